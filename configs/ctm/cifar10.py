r"""Consistency trajectory models (CTM; Kim et al. 2023, arXiv:2310.02279) on CIFAR-10.

  python -m diffjax.main --config=configs/edm/cifar10.py --workdir=workdirs/edm_c10   # teacher
  python -m diffjax.main --config=configs/ctm/cifar10.py \
      --config.init_from=workdirs/edm_c10 --workdir=workdirs/ctm_c10

The official sony/ctm CIFAR-10 defaults (script_util.py; methods/ctm.py): N = 18 Karras levels on
[0.002, 80], ρ = 7, up to 17 teacher Heun steps with p(n) ∝ n, θ⁻ EMA 0.999, DSM with the
adaptive weight, batch 128, Adam lr 4e-4, EMA 0.999 for sampling, σ_data = 0.5; γ-sampling.
Network: EDM's DDPM++ of configs/edm/cifar10.py (as the official code, which starts from EDM's
checkpoint), plus the second time input s (`interval_map` in models/song_unet.py), so that the
teacher is a configs/edm/cifar10.py run; `:net=unet` takes the DDPM-style U-Net of models/unet.py
instead (its teacher: an EDM run of that U-Net). Differences: squared L2 instead of LPIPS, no GAN
term (the paper's 1.73 FID needs both).
Paper (with LPIPS + GAN): FID 1.73 at 1 step.
"""

from diffjax import config_lib

SMOKE_ARGS = ("smoke", "net=unet,smoke")
STEPS = 100_000


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, gamma=0.0, net="ddpmpp", grid="karras", smoke=False)
  config_lib.pick(arg.net, {"ddpmpp": 0, "unet": 0}, key="net")
  config = config_lib.base()
  config.data = config_lib.cifar10(batch_size=128)
  config.update(
      config_lib.ctm(
          gamma=float(arg.gamma),
          sample_grid=arg.grid,
          teacher="random" if arg.smoke else "checkpoint",
          dsm_layer="dec32_aux_conv" if arg.net == "ddpmpp" else "conv_out",
      )
  )
  config.sample.update(batch_size=1000, num_samples=50_000)
  if arg.net == "ddpmpp":  # the teacher's network (configs/edm/cifar10.py), augment map unused
    config.model = config_lib.song_unet("ddpmpp", dropout=0.13, augment_dim=9)
  else:
    config.model = config_lib.unet(
        ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.0
    )
  config.optim = config_lib.adam(4e-4, warmup_steps=0, ema=config_lib.ema_constant(0.999))
  config.train = config_lib.train(STEPS, log_every_steps=1000, ckpt_every_steps=10_000)
  config.eval = config_lib.evaluation()
  if arg.smoke:
    config_lib.shrink(config)
    # Tests: a fixed DSM weight (the adaptive one is tested in tests/methods/test_ctm.py).
    config.method.update(num_scales=4, max_heun_steps=2, dsm_weight=1.0)
  config.eval.fd_samplers = config_lib.ctm_fd_samplers(config)  # after num_scales is final
  return config
