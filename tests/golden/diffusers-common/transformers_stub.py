"""A `transformers` stub for the make.py scripts that build diffusers 0.25.1 pipelines which name transformers
classes (../instruct-pix2pix, ../upscale, ../t2i-adapter, ../sdxl-controlnet-img2img, ../sdxl-controlnet-inpaint, ../ip-adapter,
../ldm, whose LDMSuperResolutionPipeline diffusers exports only when transformers is installed).

transformers is not installed here. Imported before diffusers_prelude (so before diffusers), this module puts into
sys.modules a `transformers` whose every class is an empty placeholder, made on first use, and a `transformers.utils`
with the three weight file names diffusers reads from it. With a transformers-4.36.0.dist-info/METADATA on
PYTHONPATH (e.g. /tmp/stubs) diffusers then takes transformers as installed and imports those pipelines. Nothing of
transformers runs: the pipelines are built from their components with text_encoder=None, tokenizer=None and called
with the prompt embeddings real transformers 4.36 computed, stored in tests/golden/tiny-sd*-expected.safetensors
(diffusers_prelude.tiny_sdxl_embeds). The stub has no __version__, so a pipeline's from_pretrained, which reads it,
cannot run under it: scripts that load pipelines that way (../consistency-models, ../dit) do not import it.
"""
import importlib.machinery
import sys
import types

assert "diffusers" not in sys.modules, "import transformers_stub before diffusers_prelude (before diffusers)"


class _Transformers(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        c = type(name, (), {})
        setattr(self, name, c)
        return c


_tf = _Transformers("transformers")
_tf.__spec__ = importlib.machinery.ModuleSpec("transformers", None)
_tf.__path__ = []
_tfu = types.ModuleType("transformers.utils")
_tfu.FLAX_WEIGHTS_NAME, _tfu.SAFE_WEIGHTS_NAME, _tfu.WEIGHTS_NAME = "flax_model.msgpack", "model.safetensors", "pytorch_model.bin"
_tf.utils = _tfu
sys.modules["transformers"], sys.modules["transformers.utils"] = _tf, _tfu
