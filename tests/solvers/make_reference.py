r"""Produces tests/solvers/data/reference_parity.npz by running the official samplers once.

Not a test and not imported by one: it needs PyTorch and checkouts of the reference repositories,
which are NOT part of diffjax. Run in a separate environment:

  python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch==2.13.0 numpy scipy
  /tmp/refvenv/bin/python tests/solvers/make_reference.py \
      --edm PATH/TO/NVlabs/edm --kdiffusion PATH/TO/crowsonkb/k-diffusion \
      --dpm_solver PATH/TO/LuChengTHU/dpm-solver --out tests/solvers/data/reference_parity.npz

Commits used for the stored data: NVlabs/edm 008a4e53, crowsonkb/k-diffusion 4601bf08,
LuChengTHU/dpm-solver 52bc3fbc. The reference functions are loaded from those paths at run time
(k-diffusion's and EDM's sampler functions are pulled out of their modules with `ast`, because
importing the packages needs their training dependencies); nothing of them is stored here.

Problem (float64 throughout): a 2-D, 3-component diagonal Gaussian mixture with the exact
denoiser written below in PyTorch (independently of diffjax.solvers.testing), batch 6, fixed
initial noise. Stored per case: the σ-frame grid, x_init and the reference output (σ-frame:
x̃ = z/α for DPM-Solver's VP runs).
"""

import argparse
import ast
import importlib.util
import json
import math
import os
import types

import numpy as np
import torch
from scipy import integrate

torch.set_default_dtype(torch.float64)

MEANS = np.array([[-2.0, 0.0], [1.5, 1.5], [1.0, -2.0]])
STDS = np.array([[0.3, 0.5], [0.6, 0.4], [0.5, 0.5]])
WEIGHTS = np.array([0.2, 0.5, 0.3])
BATCH = 6


def denoiser(x, sigma):
  """E[x0 | x0 + σ ε = x] for the mixture; x [B, 2], sigma scalar or [B]."""
  means, stds, weights = (torch.as_tensor(a) for a in (MEANS, STDS, WEIGHTS))
  sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1, 1)
  var = stds[None] ** 2 + sigma**2
  diff = x[:, None, :] - means[None]
  logp = -0.5 * (diff**2 / var + torch.log(2 * math.pi * var)).sum(-1) + torch.log(weights)[None]
  post = torch.softmax(logp, dim=-1)
  comp = means[None] + stds[None] ** 2 / var * diff
  return (post[..., None] * comp).sum(1)


class ExactNet:
  """What `edm_sampler` needs of a network: σ range, round_sigma and D(x, σ, labels)."""

  sigma_min, sigma_max = 0.0, float("inf")

  def round_sigma(self, sigma):
    return torch.as_tensor(sigma)

  def __call__(self, x, sigma, class_labels=None):
    return denoiser(x, sigma)


def load_functions(path, names, namespace):
  """Executes only the named top-level functions of a source file in `namespace`."""
  with open(path) as f:
    tree = ast.parse(f.read())
  nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
  for n in nodes:
    n.decorator_list = []  # @torch.no_grad() only
  exec(compile(ast.Module(body=nodes, type_ignores=[]), path, "exec"), namespace)
  missing = set(names) - {n.name for n in nodes}
  assert not missing, missing
  return namespace


def x_noise(seed):
  return torch.as_tensor(np.random.default_rng(seed).standard_normal((BATCH, 2)))


def run_edm(repo, cases):
  ns = load_functions(
      os.path.join(repo, "generate.py"), ["edm_sampler"], {"torch": torch, "np": np}
  )
  net = ExactNet()
  for num_steps in (8, 18):
    latents = x_noise(num_steps)
    out = ns["edm_sampler"](
        net, latents, num_steps=num_steps, sigma_min=0.002, sigma_max=80.0, rho=7.0
    )
    step = torch.arange(num_steps, dtype=torch.float64)
    t = (80.0 ** (1 / 7) + step / (num_steps - 1) * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    sigmas = torch.cat([t, torch.zeros(1)])
    cases[f"edm_heun_{num_steps}"] = dict(
        solver="heun",
        options={},
        sigmas=sigmas.numpy(),
        x_init=(latents * 80.0).numpy(),
        out=out.numpy(),
        source="NVlabs/edm generate.py:edm_sampler (S_churn=0)",
    )


def run_kdiffusion(repo, cases):
  utils = load_functions(os.path.join(repo, "k_diffusion", "utils.py"), ["append_dims"], {})
  ns = {
      "torch": torch,
      "math": math,
      "integrate": integrate,
      "trange": lambda *a, disable=None: range(*a),
      "utils": types.SimpleNamespace(**utils),
  }
  names = [
      "append_zero",
      "get_sigmas_karras",
      "to_d",
      "sample_euler",
      "sample_heun",
      "linear_multistep_coeff",
      "sample_lms",
      "sample_dpmpp_2m",
  ]
  load_functions(os.path.join(repo, "k_diffusion", "sampling.py"), names, ns)
  model = lambda x, sigma: denoiser(x, sigma)
  for n in (10,):
    sigmas = ns["get_sigmas_karras"](n, 0.002, 80.0, rho=7.0)
    x_init = x_noise(100 + n) * sigmas[0]
    for solver, fn in (
        ("euler", "sample_euler"),
        ("heun", "sample_heun"),
        ("lms", "sample_lms"),
        ("dpmpp_2m", "sample_dpmpp_2m"),
    ):
      out = ns[fn](model, x_init.clone(), sigmas, disable=True)
      cases[f"kdiff_{solver}_{n}"] = dict(
          solver=solver,
          options={},
          sigmas=sigmas.numpy(),
          x_init=x_init.numpy(),
          out=out.numpy(),
          source=f"crowsonkb/k-diffusion sampling.py:{fn}",
      )


def run_dpm_solver(repo, cases):
  spec = importlib.util.spec_from_file_location(
      "dpm_solver_pytorch", os.path.join(repo, "dpm_solver_pytorch.py")
  )
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  vp = mod.NoiseScheduleVP("linear", continuous_beta_0=0.1, continuous_beta_1=20.0)

  def noise_fn(z, t):  # ε-prediction of the exact model in the VP frame
    alpha, sigma = vp.marginal_alpha(t), vp.marginal_std(t)
    a, s = alpha.reshape(-1, 1), sigma.reshape(-1, 1)
    x_tilde, sigma_tilde = z / a, (sigma / alpha)
    return (x_tilde - denoiser(x_tilde, sigma_tilde)) / (s / a)

  model_fn = mod.model_wrapper(noise_fn, vp, model_type="noise")
  runs = (
      ("dpm_solver_2", "dpmsolver", "singlestep_fixed", 2, 12, {}),
      ("dpm_solver_3", "dpmsolver", "singlestep_fixed", 3, 12, {}),
      ("dpmpp_2s", "dpmsolver++", "singlestep_fixed", 2, 12, {}),
      ("dpmpp_2m", "dpmsolver++", "multistep", 2, 6, {}),
      ("dpmpp_2m", "dpmsolver++", "multistep", 2, 12, {}),
      ("dpmpp_3m", "dpmsolver++", "multistep", 3, 6, {}),
      ("dpmpp_3m", "dpmsolver++", "multistep", 3, 12, {}),
  )
  t_end = 1e-3
  for solver, algorithm, method, order, steps, options in runs:
    dpm = mod.DPM_Solver(model_fn, vp, algorithm_type=algorithm)
    num = steps // order if method == "singlestep_fixed" else steps
    ts = dpm.get_time_steps("logSNR", 1.0, t_end, num, "cpu")
    sigmas = (vp.marginal_std(ts) / vp.marginal_alpha(ts)).numpy()
    z_init = x_noise(200 + steps + order)  # DPM-Solver starts from N(0, I) at t = 1
    out = dpm.sample(
        z_init.clone(),
        steps=steps,
        t_start=1.0,
        t_end=t_end,
        order=order,
        skip_type="logSNR",
        method=method,
        lower_order_final=True,
        denoise_to_zero=False,
    )
    alpha_0, alpha_1 = vp.marginal_alpha(torch.tensor(t_end)), vp.marginal_alpha(torch.tensor(1.0))
    cases[f"dpm_{solver}_{steps}"] = dict(
        solver=solver,
        options=options,
        sigmas=sigmas,
        x_init=(z_init / alpha_1).numpy(),
        out=(out / alpha_0).numpy(),
        source=f"LuChengTHU/dpm-solver dpm_solver_pytorch.py:DPM_Solver.sample("
        f"algorithm_type={algorithm}, method={method}, order={order}, steps={steps}, "
        f"skip_type=logSNR, t_end={t_end}, lower_order_final=True)",
    )


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--edm", required=True)
  parser.add_argument("--kdiffusion", required=True)
  parser.add_argument("--dpm_solver", required=True)
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  cases = {}
  run_edm(args.edm, cases)
  run_kdiffusion(args.kdiffusion, cases)
  run_dpm_solver(args.dpm_solver, cases)
  arrays, meta = {"means": MEANS, "stds": STDS, "weights": WEIGHTS}, {}
  for name, case in cases.items():
    for key in ("sigmas", "x_init", "out"):
      arrays[f"{name}/{key}"] = np.asarray(case[key], np.float64)
    meta[name] = {k: case[k] for k in ("solver", "options", "source")}
  arrays["cases_json"] = np.array(json.dumps(meta, sort_keys=True))
  np.savez(args.out, **arrays)
  print(f"wrote {len(cases)} cases to {args.out}: {sorted(cases)}")


if __name__ == "__main__":
  main()
