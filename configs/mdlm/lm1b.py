r"""MDLM (Sahoo et al. 2024, arXiv:2406.07524) on LM1B through TFDS, at the paper's model size.

  python -m diffjax.main --config=configs/mdlm/lm1b.py --workdir=gs://BUCKET/mdlm_lm1b \
      --config.data.path=TFDS_DATA_DIR   # lm1b prepared in array_record format

Sentences as UTF-8 byte tokens (vocabulary 256, padded to 128 with byte 0; `data/tfds_text.py`),
not MDLM's bert-base-uncased tokens, so bits per byte here are not its perplexity (≤ 23.00).
SEDD-small/MDLM network (hidden 768, 12 blocks, 12 heads, dropout 0.1), batch 512, AdamW 3e-4 with
2500 warm-up steps, EMA 0.9999, 1M steps; absorbing graph, log-linear noise, SUBS, antithetic t,
no time conditioning, cached ancestral sampler. Other TFDS text sets: --config.data.tfds_name.
Not run here (the smoke variant runs on tfds.testing.mock_data).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = config_lib.base()
  config.data = dict(
      name="tfds_text", tfds_name="lm1b", batch_size=512, seq_len=128, path=config_lib.optional(str)
  )
  config.schedule = dict(kind="loglinear", eps=1e-3)
  config.method = dict(
      kind="discrete",
      process="mdlm",
      graph="absorbing",
      vocab_size=256,
      t_min=1e-3,
      antithetic=True,
      time_conditioning=False,
  )
  config.model = config_lib.token_transformer(hidden_size=768, depth=12, num_heads=12, dropout=0.1)
  config.optim = config_lib.adam(
      3e-4, warmup_steps=2500, grad_clip=1.0, ema=config_lib.ema_constant(0.9999)
  )
  config.train = config_lib.train(1_000_000, log_every_steps=1000, ckpt_every_steps=10_000)
  config.sample = config_lib.sampler("ancestral", 1000, "uniform", batch_size=64, num_samples=1024)
  config.eval = config_lib.evaluation(
      num_samples=0, num_plot=0, bpd_num_examples=10_000, bpd_batch_size=256
  )
  if arg.smoke:
    config_lib.shrink_text(config)
  return config
