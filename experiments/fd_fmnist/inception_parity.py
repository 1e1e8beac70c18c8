r"""One-off check of diffjax.metrics.inception against torchvision's Inception3 (needs torch).

  python experiments/fd_fmnist/inception_parity.py --out_dir=/tmp/parity

torchvision's Inception3 (random weights, random BatchNorm statistics) is turned into pytorch-fid's
FIDInceptionV3 by the two documented pool changes: the pool branches of the A, C and first E blocks
average with count_include_pad=False, and Mixed_7c's pool branch is a 3x3/1 max pool. Its state
dict goes through `inception.load_npz`; pool3 features of the same random images must agree.
Both run on CPU in float32.
"""

import os

from absl import app
from absl import flags
import numpy as np

_OUT_DIR = flags.DEFINE_string("out_dir", "/tmp/inception_parity", "scratch folder")
_SEED = flags.DEFINE_integer("seed", 0, "torch / numpy seed")


def _torch_fid_features(images):
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  from torchvision.models import inception as tv  # pylint: disable=g-import-not-at-top

  torch.manual_seed(_SEED.value)
  model = tv.Inception3(
      num_classes=1008, aux_logits=False, transform_input=False, init_weights=True
  )
  x = torch.from_numpy(np.repeat(images, 3, axis=-1).transpose(0, 3, 1, 2).copy())
  x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
  # BatchNorm statistics of these images (momentum 1: running = batch statistics), so that
  # activations stay O(1) through the 94 layers; then random affine parameters.
  gen = torch.Generator().manual_seed(_SEED.value)
  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.momentum = 1.0
    model.train()(x)
    model.eval()
    for module in model.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        n = module.num_features
        module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
        module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
  state = {k: v.numpy() for k, v in model.state_dict().items()}

  model.fc = torch.nn.Identity()
  with torch.no_grad():
    plain = model(x).numpy()  # torchvision's own pools (count_include_pad=True, avg in 7c)
  original = F.avg_pool2d
  mode = {"max": False}

  def fid_pool(x, kernel_size, stride=None, padding=0, **kwargs):
    del kwargs
    if mode["max"]:
      return F.max_pool2d(x, kernel_size, stride, padding)
    return original(x, kernel_size, stride, padding, count_include_pad=False)

  tv.F.avg_pool2d = fid_pool
  model.Mixed_7c.register_forward_pre_hook(lambda *a: mode.update(max=True))
  model.Mixed_7c.register_forward_hook(lambda *a: mode.update(max=False))
  with torch.no_grad():
    feats = model(x).numpy()
  tv.F.avg_pool2d = original
  return state, feats, plain


def main(argv):
  del argv
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  from diffjax.metrics import inception  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(_SEED.value)
  images = rng.uniform(-1, 1, (4, 28, 28, 1)).astype(np.float32)
  state, torch_feats, plain_feats = _torch_fid_features(images)
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  path = os.path.join(_OUT_DIR.value, "random_inception.npz")
  np.savez(path, **state)
  params = inception.load_npz(path)
  jax_feats = np.asarray(inception.features_fn(params)(images))
  err = np.abs(jax_feats - torch_feats)
  print(
      f"arrays in state dict: {len(state)}; torch features {torch_feats.shape}, "
      f"mean |f| {np.abs(torch_feats).mean():.4g}"
  )
  print(
      f"max |jax - torch| = {err.max():.3g}, max relative = "
      f"{(err.max() / np.abs(torch_feats).max()):.3g}"
  )
  plain = np.abs(jax_feats - plain_feats).max()
  print(f"sensitivity: max |jax - torchvision with its own (non-FID) pools| = {plain:.3g}")


if __name__ == "__main__":
  app.run(main)
