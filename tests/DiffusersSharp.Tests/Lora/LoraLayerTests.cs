using DiffusersSharp.Loading.Lora;
using DiffusersSharp.Models;
using DiffusersSharp.Models.Lora;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Lora;

/// <summary>
/// The LoRA-compatible layers against the formula written out in float64: <c>base(x) + s·w·(α/r)·up(down(x))</c>, for a
/// linear layer, a strided 3×3 convolution (a downsampler, which no golden LoRA targets) in both layouts, and a 1×1
/// convolution fed a 2-D (linear-shaped) LoRA; and a file folder read as diffusers reads it.
/// </summary>
public class LoraLayerTests
{
    private const double Float32Tol = 1e-5;

    [Fact]
    public void ALinearLoraAddsScaleTimesAlphaOverRankTimesUpDown()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(7);
        using var layer = new LoRACompatibleLinear(12, 10);
        using var x = torch.randn(3, 5, 12);
        var down = torch.randn(4, 12);
        var up = torch.randn(10, 4);
        using var d64 = down.to(ScalarType.Float64);
        using var u64 = up.to(ScalarType.Float64);
        layer.AddAdapter(new LoraAdapter("a", down, up, alpha: 2.0, weight: 0.5), replace: false);
        layer.ScaleSource = new LoraScale { Value = 0.8 };
        using var y = layer.forward(x);
        using var x64 = x.to(ScalarType.Float64);
        using var expected = x64.matmul(layer.Weight.to(ScalarType.Float64).t()) + layer.Bias!.to(ScalarType.Float64)
            + 0.8 * 0.5 * (2.0 / 4) * x64.matmul(d64.t()).matmul(u64.t());
        Tol.Close(y, expected, Float32Tol, "linear LoRA");
        layer.ScaleSource.Value = 0;
        using var off = layer.forward(x);
        using var plain = nn.functional.linear(x, layer.Weight, layer.Bias);
        Assert.Equal(0.0, Tol.MaxAbsDiff(off, plain));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AStridedConvLoraIsTheConvolutionWithUpTimesDown(bool channelsLast)
    {
        using var _ = torch.no_grad();
        torch.manual_seed(8);
        using var layer = new LoRACompatibleConv(6, 8, kernelSize: 3, stride: 2, padding: 1);
        using var nchw = torch.randn(2, 6, 9, 9);
        using var x = channelsLast ? Layers.ToChannelsLast(nchw) : nchw.alias();
        var down = torch.randn(3, 6, 3, 3);
        var up = torch.randn(8, 3, 1, 1);
        using var delta = up.flatten(1).to(ScalarType.Float64).mm(down.flatten(1).to(ScalarType.Float64)).reshape(8, 6, 3, 3);
        layer.AddAdapter(new LoraAdapter("a", down, up, alpha: null), replace: false);
        using var y = layer.forward(x);
        using var w64 = layer.Weight.to(ScalarType.Float64) + delta;
        using var expected = nn.functional.conv2d(nchw.to(ScalarType.Float64), w64, layer.Bias!.to(ScalarType.Float64), strides: [2, 2], padding: [1, 1]);
        // outputs reach ~|30| with these unit-variance LoRA weights: float32 rounding, relative to the output's size
        double scale = Math.Max(1.0, expected.abs().max().item<double>());
        Tol.Close(y, expected, Float32Tol * scale, "conv LoRA");
        Assert.Equal(new long[] { 2, 8, 5, 5 }, y.shape);
    }

    [Fact]
    public void ALinearShapedLoraOnA1x1ConvIsReshapedAndFusesExactlyBack()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(9);
        using var conv = new LoRACompatibleConv(16, 16, kernelSize: 1);
        var target = new LoraTarget("unet", new Holder(conv), new LoraScale());
        var dict = new Dictionary<string, Tensor>
        {
            ["unet.proj.lora.down.weight"] = torch.randn(2, 16),
            ["unet.proj.lora.up.weight"] = torch.randn(16, 2),
        };
        using var file = LoraFile.FromStateDict("memory", dict);
        Assert.Equal(1, LoraLoader.Load(file, [target]).TotalLayers);
        Assert.Equal(new long[] { 2, 16, 1, 1 }, conv.Adapters[0].Down.shape);
        using var x = torch.randn(1, 16, 4, 4);
        using var unfused = conv.forward(x);
        using var original = conv.Weight.clone();
        Assert.Equal(1, LoraLoader.Fuse([target]));
        using var fused = conv.forward(x);
        Tol.Close(fused, unfused, Float32Tol, "fused vs unfused");
        LoraLoader.Unfuse([target]);
        Assert.Equal(0.0, Tol.MaxAbsDiff(conv.Weight, original));
    }

    [Fact]
    public void ALayerBuiltInADisposeScopeOutlivesIt_AndConvertingTheModelDtypeConvertsItsWeights()
    {
        torch.manual_seed(10);
        Holder holder;
        using (var buildScope = torch.NewDisposeScope())
            holder = new Holder(new LoRACompatibleConv(4, 6, kernelSize: 1)); // built in a scope, used after it
        using var __ = holder;
        using var x = torch.randn(1, 4, 3, 3);
        var conv = LoraLoader.Layers(holder).Single().Layer;
        using var before = conv.forward(x).detach();
        using var scope = torch.NewDisposeScope();
        using var _ = torch.inference_mode();
        using (var again = conv.forward(x)) { }
        holder.to(ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, conv.Weight.dtype);
        Assert.Equal(ScalarType.BFloat16, conv.Bias!.dtype);
        using var xb = x.to(ScalarType.BFloat16);
        using var after = conv.forward(xb);
        Tol.Close(after, before, 0.05, "bf16 vs fp32");
    }

    [Fact]
    public void AFolderIsReadThroughItsSafetensorsFile()
    {
        using var file = LoraFile.Read(Golden.Path("tiny-sd-lora", "diffusers"));
        Assert.EndsWith("pytorch_lora_weights.safetensors", file.Path);
        Assert.Equal(LoraFormat.Diffusers, file.Format);
        Assert.Equal(68, file.Modules.Count);
        Assert.All(file.Modules, m => Assert.Null(m.Alpha)); // save_lora_weights writes no alpha
    }

    /// <summary>A model with one layer registered as <c>proj</c>.</summary>
    private sealed class Holder : nn.Module
    {
        private readonly LoRACompatibleConv proj;

        public Holder(LoRACompatibleConv layer) : base(nameof(Holder))
        {
            proj = layer;
            RegisterComponents();
        }
    }
}
