r"""Guidance, editing and inverse problems on Fashion-MNIST with short-trained small models (issue 16).

  python experiments/guidance/run.py --data=<fmnist dir> --fd_dir=<FD-FMNIST classifier dir> \
      --out=<out dir> [--smoke]

Trains (1) a class-conditional EDM model with 10 % label dropout (`configs/edm/fashion_mnist.py`),
keeping its checkpoint at a quarter of training as the autoguidance guide (EDM2's "less trained
model of the same family"), (2) a noise-conditional classifier (`methods.classifier`) on the same
schedule; then, each through `methods.sampling.sample`:
  inverse problems on test images (PSNR on the 28×28 crop, FD-FMNIST of the reconstructions):
    box inpainting (replacement, RePaint U=4, DPS), 2× super-resolution (DDNM projection, DPS),
    deblurring (DPS);
  SDEdit from 4×-downsampled test images: t0 sweep (FD vs PSNR to the original / to the input);
  CFG sweep (FD-FMNIST and the FD classifier's accuracy on the requested labels vs scale),
  guidance interval, autoguidance, classifier guidance (condition_score with Heun, condition_mean
  with DDPM) on the unconditional (null-label) model.
Stages run in that order while time is left (--budget_s); the report says which ran.
Writes <out>/guidance_editing.md and PNG grids.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from diffjax import config_lib
from diffjax import solvers
from diffjax.data import fashion_mnist
from diffjax.metrics import classifier as fd_classifier
from diffjax.metrics import fd_fmnist
from diffjax.methods import classifier as classifier_lib
from diffjax.methods import conditioning
from diffjax.methods import sampling
from diffjax.train import experiment
from diffjax.train import loop
from diffjax.train import progress

flags.DEFINE_string("data", fashion_mnist.DEFAULT_PATH, "Fashion-MNIST directory.")
flags.DEFINE_string("fd_dir", None, "FD-FMNIST classifier directory.", required=True)
flags.DEFINE_string("out", None, "Output directory.", required=True)
flags.DEFINE_string("workdir", "workdirs/guidance", "Where the models are trained.")
flags.DEFINE_bool("smoke", False, "Tiny CPU run (a few steps, a few samples).")
flags.DEFINE_float("budget_s", 400.0, "Start no new stage after this many seconds.")
FLAGS = flags.FLAGS

flags.DEFINE_list("stages", [], "Run only these stages (default: all, in priority order).")
T0 = time.time()
# DPS step ζ (inverse.step="x0"): an ancestral step moves x by about 2 ζ Δlog σ along -∇‖y - A x̂₀‖,
# whose norm is about 1. The official code moves x by ζ' = 1 per step for 1000 steps on 256×256×3
# images: a total per-pixel move of ~1000/√196608 ≈ 2.3. Here, on 1024 pixels with DPS_STEPS steps
# over Δlog σ ≈ 10.6, ζ ≈ 3 gives the same per-pixel total; the sweep brackets it. (The first GPU run
# used 64 steps with ζ = 30: ten times the official per-step move, and inpainting diverged to 8 dB.)
DPS_SCALES = (1.0, 3.0, 10.0)


def _elapsed():
  return time.time() - T0


def _sizes(smoke):
  if smoke:
    return dict(main=4, guide=2, clf=4, n_fd=16, n_inv=8, batch=8, steps=4, ddpm=6, dps=6)
  return dict(
      main=2000, guide=500, clf=1000, n_fd=1000, n_inv=500, batch=500, steps=18, ddpm=64, dps=256
  )


def _train_models(sz, smoke):
  wd = FLAGS.workdir
  shutil.rmtree(wd, ignore_errors=True)
  main_cfg = config_lib.load(
      "configs/edm/fashion_mnist.py",
      "smoke" if smoke else None,
      {"data.path": FLAGS.data, "method.conditional": True},
  )
  main_cfg.model["label_dropout"] = 0.1
  main_cfg.train.update(
      num_steps=sz["guide"], sample_every_steps=0, eval_every_steps=0, ckpt_every_steps=sz["guide"]
  )
  t = time.time()
  loop.train_and_evaluate(main_cfg, f"{wd}/main")
  shutil.copytree(f"{wd}/main", f"{wd}/guide")  # the early checkpoint: the autoguidance guide
  main_cfg.train.num_steps = sz["main"]
  main_cfg.train.ckpt_every_steps = sz["main"]
  loop.train_and_evaluate(main_cfg, f"{wd}/main")
  t_main = time.time() - t
  data = dict(main_cfg.data)
  clf_cfg = config_lib.noisy_classifier(
      dict(main_cfg.schedule), data, num_steps=sz["clf"], ch=16 if smoke else 32
  )
  if smoke:
    clf_cfg.data.batch_size = 8
    clf_cfg.train.async_checkpoints = False
  t = time.time()
  loop.train_and_evaluate(clf_cfg, f"{wd}/classifier")
  t_clf = time.time() - t
  exp, state, _ = experiment.restore_for_inference(main_cfg, f"{wd}/main")
  main_cfg_guide = main_cfg.copy_and_resolve_references()
  main_cfg_guide.train.num_steps = sz["guide"]
  gexp, gstate, _ = experiment.restore_for_inference(main_cfg_guide, f"{wd}/guide")
  cexp, cstate, _ = experiment.restore_for_inference(clf_cfg, f"{wd}/classifier")
  info = dict(
      main_steps=sz["main"],
      guide_steps=sz["guide"],
      clf_steps=sz["clf"],
      train_main_s=t_main,
      train_clf_s=t_clf,
      main_config=main_cfg.to_dict(),
  )
  return (
      (exp.method, state.ema_params),
      (gexp.method, gstate.ema_params),
      (cexp.method, cstate.ema_params),
      exp,
      info,
  )


def _psnr(a, b):
  """PSNR on the 28×28 crop of [-1, 1] images (peak-to-peak 2), mean over images."""
  a, b = fd_fmnist.center_crop(np.asarray(a), (28, 28)), fd_fmnist.center_crop(
      np.asarray(b), (28, 28)
  )
  mse = np.mean((a - b) ** 2, axis=(1, 2, 3))
  return float(np.mean(10 * np.log10(4.0 / np.maximum(mse, 1e-10))))


def _box_mask(n):
  m = np.ones((n, 32, 32, 1), np.float32)
  m[:, 9:23, 9:23] = 0.0  # a 14×14 hole in the middle of the 28×28 image
  return jnp.asarray(m)


class Runner:

  def __init__(self, sz, smoke):
    self.sz, self.smoke = sz, smoke
    self.fd = fd_fmnist.Evaluator.load(FLAGS.fd_dir)
    cfg, params = fd_classifier.load(FLAGS.fd_dir)
    self._logits = jax.jit(
        lambda x: fd_classifier.logits(params, fd_fmnist.center_crop(x, (28, 28)), cfg)
    )
    self.rows, self.skipped, self.pictures = {}, [], []

  def accuracy(self, x, label):
    return float(
        np.mean(np.argmax(np.asarray(self._logits(jnp.asarray(x))), -1) == np.asarray(label))
    )

  def batched(self, method, params, n, seed, **kw):
    """n samples in batches (per-example arrays in kw sliced along with them)."""
    b = min(self.sz["batch"], n)
    out = []
    for i in range(-(-n // b)):
      sl = slice(i * b, (i + 1) * b)
      kwi = {}
      for k, v in kw.items():
        if k in ("label", "x_start") and v is not None:
          kwi[k] = v[sl]
        elif k == "measurement":
          op, y = v
          op_i = solvers.inverse.Mask(op.mask[sl]) if isinstance(op, solvers.inverse.Mask) else op
          kwi[k] = (op_i, y[sl])
        else:
          kwi[k] = v
      out.append(
          np.asarray(jax.device_get(method.sample(params, jax.random.key(seed + i), b, **kwi)))
      )
    return np.concatenate(out)[:n]

  def stage(self, name, fn):
    if _elapsed() > FLAGS.budget_s:
      self.skipped.append(name)
      logging.info("skipping %s (%.0f s elapsed)", name, _elapsed())
      return
    t = time.time()
    fn()
    logging.info("stage %s: %.1f s", name, time.time() - t)
    self.rows.setdefault("_times", {})[name] = round(time.time() - t, 1)

  def save(self, rows_of_images, name):
    """Rows of [k, 32, 32, 1] images as one PNG grid."""
    grid = np.concatenate([r[:8] for r in rows_of_images])
    progress.save_samples(grid, os.path.join(FLAGS.out, name))
    self.pictures.append(name)


def main(_):
  smoke = FLAGS.smoke
  sz = _sizes(smoke)
  os.makedirs(FLAGS.out, exist_ok=True)
  model, guide, clf, exp, info = _train_models(sz, smoke)
  method, params = model
  r = Runner(sz, smoke)
  test = exp.reference_data(max(sz["n_inv"], sz["n_fd"]), split="test")
  x_test, y_test = np.asarray(test["x"], np.float32), np.asarray(test["label"], np.int32)
  train = exp.reference_data(sz["n_fd"], split="train")
  x_train = np.asarray(train["x"], np.float32)
  n_inv, n_fd, steps, ddpm = sz["n_inv"], sz["n_fd"], sz["steps"], sz["ddpm"]
  r.rows["floors"] = {
      f"fd_train_{n_fd}": r.fd.distance(x_train[:n_fd]),
      f"fd_train_{n_inv}": r.fd.distance(x_train[:n_inv]),
      f"acc_test_{n_fd}": r.accuracy(x_test[:n_fd], y_test[:n_fd]),
  }
  xs, ls = jnp.asarray(x_test[:n_inv]), jnp.asarray(y_test[:n_inv])

  def inverse():
    mask = _box_mask(n_inv)
    down = solvers.inverse.Downsample(2)
    blur = solvers.inverse.Blur(2.0)  # Gaussian blur of std 2 pixels
    tasks = {
        "inpaint_replace": (
            solvers.inverse.Mask(mask),
            dict(solver="ddpm", num_steps=ddpm),
            dict(kind="replace"),
        ),
        "inpaint_repaint_u4": (
            solvers.inverse.Mask(mask),
            dict(solver="repaint", num_steps=ddpm // 2, solver_kwargs=dict(resample=4)),
            dict(kind="replace"),
        ),
        "sr2_ddnm": (down, dict(solver="ddpm", num_steps=ddpm), dict(kind="replace")),
    }
    for task, op in (("inpaint", solvers.inverse.Mask(mask)), ("sr2", down), ("deblur", blur)):
      for scale in DPS_SCALES:
        tasks[f"{task}_dps_s{scale:g}"] = (
            op,
            dict(solver="ddpm", num_steps=sz["dps"]),
            dict(kind="dps", likelihood="norm", scale=scale, step="x0"),
        )
    res, pics = {}, {}
    for name, (op, solver, inv) in tasks.items():
      y = op.apply(xs)
      out = r.batched(
          method, params, n_inv, 10, label=ls, measurement=(op, y), inverse=inv, **solver
      )
      res[name] = dict(psnr=_psnr(out, xs), fd=r.fd.distance(out), inverse=inv, sampler=solver)
      shown = np.asarray(op.pinv(y)) if not name.startswith("deblur") else np.asarray(y)
      pics[name] = (shown, out)
      if name in ("inpaint_replace", "sr2_ddnm", f"deblur_dps_s{DPS_SCALES[0]:g}"):
        res[name.split("_")[0] + "_measurement_psnr"] = _psnr(shown, xs)
    for task in ("inpaint", "sr2", "deblur"):  # the pictures show each task's best ζ (by PSNR)
      best = max((k for k in res if k.startswith(f"{task}_dps_s")), key=lambda k: res[k]["psnr"])
      pics[f"{task}_dps"] = pics[best]
      res[f"{task}_dps_shown"] = best
    r.rows["inverse"] = res
    r.save(
        [np.asarray(xs)]
        + [v for k in ("inpaint_replace", "inpaint_repaint_u4", "inpaint_dps") for v in pics[k][1:]]
        + [pics["inpaint_replace"][0]],
        "inpainting.png",
    )
    r.save(
        [
            np.asarray(xs),
            pics["sr2_ddnm"][0],
            pics["sr2_ddnm"][1],
            pics["sr2_dps"][1],
            pics["deblur_dps"][0],
            pics["deblur_dps"][1],
        ],
        "sr_deblur.png",
    )

  def sdedit():
    coarse = solvers.inverse.Downsample(4)
    guide_img = coarse.pinv(coarse.apply(xs))
    res, rows = {}, [np.asarray(xs), np.asarray(guide_img)]
    for t0 in (0.3, 0.5, 0.8):
      out = r.batched(
          method,
          params,
          n_inv,
          20,
          label=ls,
          x_start=guide_img,
          start_t=t0,
          num_steps=steps * 2,
          solver="heun",
      )
      res[str(t0)] = dict(
          sigma_start=conditioning.start_sigma(method, params, t0),
          fd=r.fd.distance(out),
          psnr_to_original=_psnr(out, xs),
          psnr_to_input=_psnr(out, guide_img),
      )
      rows.append(out)
    res["input"] = dict(
        fd=r.fd.distance(np.asarray(guide_img)), psnr_to_original=_psnr(guide_img, xs)
    )
    r.rows["sdedit"] = res
    r.save(rows, "sdedit.png")

  labels = jnp.asarray(np.arange(n_fd) % 10, jnp.int32)

  def cfg_sweep():
    res, rows = {}, []
    for s in (0.0, 1.0, 1.5, 2.0, 3.0, 4.0):
      out = r.batched(method, params, n_fd, 30, label=labels, guidance_scale=s)
      res[str(s)] = dict(fd=r.fd.distance(out), acc=r.accuracy(out, labels))
      rows.append(out)
    r.rows["cfg"] = res
    r.save(rows, "cfg_sweep.png")

  def interval():
    res = {}
    for s in (2.0, 3.0):
      out = r.batched(
          method, params, n_fd, 30, label=labels, guidance_scale=s, guidance_interval=(0.28, 5.42)
      )
      res[str(s)] = dict(fd=r.fd.distance(out), acc=r.accuracy(out, labels))
    r.rows["cfg_interval"] = res

  def autoguidance():
    res = {}
    for s in (1.5, 2.0, 3.0):
      out = r.batched(method, params, n_fd, 30, label=labels, guidance_scale=s, guide=guide)
      res[str(s)] = dict(fd=r.fd.distance(out), acc=r.accuracy(out, labels))
    r.rows["autoguidance"] = res

  def classifier_guidance():
    res, rows = {}, []
    for mode, solver in (
        ("score", dict(solver="heun", num_steps=steps)),
        ("mean", dict(solver="ddpm", num_steps=ddpm)),
    ):
      for s in (1.0, 3.0):
        out = r.batched(
            method,
            params,
            n_fd,
            30,
            label=labels,
            guidance_scale=0.0,
            classifier=clf,
            classifier_mode=mode,
            classifier_scale=s,
            **solver,
        )
        res[f"{mode}_{s}"] = dict(
            fd=r.fd.distance(out), acc=r.accuracy(out, labels), sampler=solver
        )
        rows.append(out)
    r.rows["classifier"] = res
    r.save(rows, "classifier_guidance.png")

  for name, fn in (
      ("inverse", inverse),
      ("sdedit", sdedit),
      ("cfg_sweep", cfg_sweep),
      ("classifier", classifier_guidance),
      ("interval", interval),
      ("autoguidance", autoguidance),
  ):
    if not FLAGS.stages or name in FLAGS.stages:
      r.stage(name, fn)
  info["skipped"] = r.skipped
  info["wall_s"] = _elapsed()
  info["device"] = str(jax.devices()[0].device_kind)
  info["commit"] = os.environ.get("DIFFJAX_COMMIT", "")
  with open(os.path.join(FLAGS.out, "guidance_editing.json"), "w") as f:
    json.dump(dict(info=info, rows=r.rows, pictures=r.pictures), f, indent=1, default=str)
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import report  # pylint: disable=import-outside-toplevel

  report.write(
      os.path.join(FLAGS.out, "guidance_editing.json"),
      os.path.join(FLAGS.out, "guidance_editing.md"),
  )


if __name__ == "__main__":
  app.run(main)
