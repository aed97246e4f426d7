# Exports the random-weight ddpm-cat-256 UNet and SD 1.5 UNet architectures (diffusers, fp32) to ONNX graphs whose
# float weights are external references into weights.bin (the weights themselves are not brought back: any random
# values serve for timing). Run on the device machine: python3 .devpy/export_onnx.py
import os, sys, json, time, traceback
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch, numpy as np, onnx
from onnx import numpy_helper, external_data_helper as edh
from diffusers.models.unets.unet_2d import UNet2DModel
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
OUT = os.environ.get("OUT", "/tmp/out"); os.makedirs(OUT, exist_ok=True)
DDPM = dict(act_fn="silu", attention_head_dim=None, block_out_channels=[128,128,256,256,512,512], center_input_sample=False,
  down_block_types=["DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","AttnDownBlock2D","DownBlock2D"], downsample_padding=0,
  flip_sin_to_cos=False, freq_shift=1, in_channels=3, layers_per_block=2, mid_block_scale_factor=1, norm_eps=1e-6, norm_num_groups=32,
  out_channels=3, sample_size=256, time_embedding_type="positional",
  up_block_types=["UpBlock2D","AttnUpBlock2D","UpBlock2D","UpBlock2D","UpBlock2D","UpBlock2D"])
SD15 = dict(act_fn="silu", attention_head_dim=8, block_out_channels=[320,640,1280,1280], center_input_sample=False, cross_attention_dim=768,
  down_block_types=["CrossAttnDownBlock2D","CrossAttnDownBlock2D","CrossAttnDownBlock2D","DownBlock2D"], downsample_padding=1,
  flip_sin_to_cos=True, freq_shift=0, in_channels=4, layers_per_block=2, mid_block_scale_factor=1, norm_eps=1e-5, norm_num_groups=32,
  out_channels=4, sample_size=64, up_block_types=["UpBlock2D","CrossAttnUpBlock2D","CrossAttnUpBlock2D","CrossAttnUpBlock2D"])

class Wrap(torch.nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, *a): return self.m(*a, return_dict=False)[0]

def export(name, model, args, names):
    t0 = time.time(); tmp = f"/tmp/x/{name}"; os.makedirs(tmp, exist_ok=True)
    path = f"{tmp}/{name}.onnx"
    model = Wrap(model.eval())
    with torch.no_grad():
        try:
            torch.onnx.export(model, args, path, input_names=names, output_names=["out"], opset_version=17, dynamo=False)
            how = "torchscript exporter"
        except Exception:
            traceback.print_exc()
            torch.onnx.export(model, args, path, input_names=names, output_names=["out"], dynamo=True, external_data=True)
            how = "dynamo exporter"
    m = onnx.load(path)  # with its external data
    off = 0; n = 0
    for t in m.graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype != np.float32 or a.size < 256: continue
        for f in ("raw_data", "float_data"): t.ClearField(f)
        del t.external_data[:]
        for k, v in (("location", "weights.bin"), ("offset", str(off)), ("length", str(a.nbytes))):
            e = t.external_data.add(); e.key = k; e.value = v
        t.data_location = onnx.TensorProto.EXTERNAL
        off += (a.nbytes + 63) // 64 * 64; n += 1
    onnx.save_model(m, f"{OUT}/{name}.onnx")
    info = dict(name=name, exporter=how, torch=torch.__version__, onnx=onnx.__version__, external_tensors=n, weights_bin_bytes=off,
                params=sum(p.numel() for p in model.parameters()), seconds=round(time.time() - t0, 1),
                graph_bytes=os.path.getsize(f"{OUT}/{name}.onnx"), inputs=[(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim], i.type.tensor_type.elem_type) for i in m.graph.input])
    print(json.dumps(info)); json.dump(info, open(f"{OUT}/{name}.json", "w"))

torch.manual_seed(0)
export("ddpm-cat-256", UNet2DModel(**DDPM), (torch.randn(1,3,256,256), torch.tensor([10], dtype=torch.int64)), ["sample", "timestep"])
export("sd15-unet", UNet2DConditionModel(**SD15), (torch.randn(2,4,64,64), torch.tensor([10], dtype=torch.int64), torch.randn(2,77,768)),
       ["sample", "timestep", "encoder_hidden_states"])
