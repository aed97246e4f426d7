using DiffusersSharp.Models;
using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- group-norm-paths [--dtypes bf16,fp32] [--runs 20]</c>: the ResNet blocks' norm + SiLU at the SD 1.5 UNet's
/// shapes (batch 2; <c>h + temb</c>, <c>norm2</c>, <c>silu</c>, and <c>norm1</c>, <c>silu</c>) and the SD VAE decoder's
/// (batch 1 at 256² and 512²), interleaved call by call: libtorch's ops (what <c>ResnetBlock2D</c> runs without the kernel,
/// in place where it is) against our fused kernel (<see cref="FusedGroupNorm"/>). bf16 runs channels-last, fp32 NCHW (the
/// layouts the pipelines use). Error: max |Δ| against the fp32 ops on the same values.
/// </summary>
public static class GroupNormPathsBench
{
    private static readonly (string Name, long N, long C, long Size, bool Temb)[] Shapes =
    {
        ("UNet 64² 320 +temb", 2, 320, 64, true), ("UNet 64² 640", 2, 640, 64, false), ("UNet 32² 640 +temb", 2, 640, 32, true),
        ("UNet 16² 1280 +temb", 2, 1280, 16, true), ("UNet 8² 1280 +temb", 2, 1280, 8, true),
        ("VAE 256² 512", 1, 512, 256, false), ("VAE 512² 256", 1, 256, 512, false), ("VAE 512² 128", 1, 128, 512, false),
    };

    public static int Run(ScalarType[] dtypes, int runs)
    {
        using var mode = torch.inference_mode();
        Console.WriteLine($"group norm + SiLU paths (fused kernel: {FusedGroupNorm.Status}), {torch.get_num_threads()} thread(s), medians of {runs}");
        foreach (var dtype in dtypes)
        {
            bool channelsLast = dtype == ScalarType.BFloat16;
            foreach (var (name, n, c, size, withTemb) in Shapes)
            {
                torch.manual_seed(0);
                using var xf = torch.randn(n, c, size, size) * 2 + 0.5;
                using var tf = torch.randn(n, c, 1, 1);
                using var wf = torch.rand(c) + 0.5;
                using var bf = torch.randn(c) * 0.1;
                using var xd = xf.to(dtype);
                using var x = channelsLast ? Layers.ToChannelsLast(xd) : xd.alias();
                using var t = tf.to(dtype);
                using var w = wf.to(dtype);
                using var b = bf.to(dtype);
                Tensor? temb = withTemb ? t : null;
                using var reference = nn.functional.silu(nn.functional.group_norm(xd.to(ScalarType.Float32) + (withTemb ? t.to(ScalarType.Float32) : 0),
                    32, w.to(ScalarType.Float32), b.to(ScalarType.Float32), 1e-6));
                var r = InterleavedPaths.Run(runs, reference,
                    () =>
                    {
                        var h = temb is null ? x.clone() : x + temb;   // the block's input is not its own: the norm makes the first new tensor
                        using var g = nn.functional.group_norm(h, 32, w, b, 1e-6);
                        h.Dispose();
                        return nn.functional.silu(g.alias(), inplace: true);
                    },
                    () => FusedGroupNorm.Run(x, temb, 32, w, b, 1e-6, silu: true));
                Console.WriteLine($"  {dtype,-8} {name,-20} {InterleavedPaths.Line(r)}");
            }
        }
        return 0;
    }
}
