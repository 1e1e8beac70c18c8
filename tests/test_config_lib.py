"""Config-arg parsing: typed keys, bare words, and errors that name the key."""

import chex

from diffjax import config_lib


class ParseArgTest(chex.TestCase):

  def test_bare_words_and_values(self):
    arg = config_lib.parse_arg("smoke,steps=5", size="default", smoke=False, steps=1)
    self.assertEqual((arg.size, arg.smoke, arg.steps), ("default", True, 5))
    self.assertEqual(config_lib.parse_arg("demo", size="default").size, "demo")
    self.assertEqual(config_lib.parse_arg(None, size="default").size, "default")

  def test_errors_name_the_key(self):
    with self.assertRaisesRegex(ValueError, "'nope'"):
      config_lib.parse_arg("nope=1", size="default")
    with self.assertRaisesRegex(ValueError, "'steps'.*int"):
      config_lib.parse_arg("steps=abc", size="default", steps=1)
    with self.assertRaisesRegex(ValueError, "size='huge'"):
      config_lib.pick("huge", {"default": 1, "smoke": 2})
