using DiffusersSharp.Models;
using DiffusersSharp.Models.Lora;
using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>
/// 3×3 convolutions of few positions as one matrix product (<see cref="Im2ColConvolution"/>) against a float64
/// convolution of the same values: fp32 to fp32 rounding, bf16 within libtorch's own bf16 error, both layouts and both
/// kernel layouts, strides 1 and 2, odd sizes, with and without bias; where it does not apply; and
/// <see cref="LoRACompatibleConv"/> and <see cref="Downsample2D"/> through it.
/// </summary>
public class Im2ColConvolutionTests
{
    private static Tensor Float64Conv(Tensor x, Tensor w, Tensor? b, long stride) =>
        nn.functional.conv2d(x.to(ScalarType.Float64), w.to(ScalarType.Float64), b?.to(ScalarType.Float64),
                             strides: [stride, stride], padding: [1, 1]);

    [Theory]
    [InlineData(2, 64, 48, 8, 8, 1, true, false, false, ScalarType.Float32)]     // NCHW, as the fp32 UNets run
    [InlineData(1, 40, 72, 7, 5, 1, false, true, true, ScalarType.Float32)]      // channels-last, odd sizes, no bias
    [InlineData(1, 40, 72, 7, 5, 2, true, true, true, ScalarType.Float32)]       // stride 2 over odd sizes (4 × 3 out)
    [InlineData(2, 48, 32, 8, 6, 2, true, false, false, ScalarType.Float32)]     // stride 2, NCHW
    [InlineData(1, 32, 40, 6, 6, 1, true, true, false, ScalarType.Float32)]      // channels-last input, NCHW kernel (copied)
    [InlineData(2, 96, 64, 8, 8, 1, true, true, true, ScalarType.BFloat16)]      // what the bf16 UNets' 8² layers run
    [InlineData(1, 64, 96, 16, 16, 2, true, true, true, ScalarType.BFloat16)]    // a bf16 downsampler
    [InlineData(1, 64, 32, 5, 9, 1, false, false, false, ScalarType.BFloat16)]   // bf16 NCHW
    public void MatchesFloat64(long n, long cin, long cout, long h, long w, long stride, bool bias, bool xCl, bool wCl, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        var (x, k, b) = WinogradConvolutionTests.Operands(n, cin, cout, h, w, bias, 41, dtype, xCl, wCl);
        Assert.True(Im2ColConvolution.Applies(x, k, b, stride));
        var expected = Float64Conv(x, k, b, stride);
        var direct = nn.functional.conv2d(x, k, b, strides: [stride, stride], padding: [1, 1]);
        var got = Im2ColConvolution.Run(x, k, b, stride);
        Assert.Equal(expected.shape, got.shape);
        Assert.Equal(dtype, got.dtype);
        Assert.Equal(xCl, !got.is_contiguous() && Layers.IsChannelsLast(got));   // the input's layout
        double ours = Tol.MaxAbsDiff(got.to(ScalarType.Float64), expected);
        double theirs = Tol.MaxAbsDiff(direct.to(ScalarType.Float64), expected);
        if (dtype == ScalarType.Float32) Assert.True(ours < 2e-5, $"im2col {ours}, libtorch {theirs}");
        else Assert.True(ours <= 1.5 * theirs + 1e-3, $"im2col {ours}, libtorch {theirs}");   // both round the output once to bf16
        Assert.False(x.IsInvalid);
        Assert.False(k.IsInvalid);
    }

    [Fact]
    public void DoesNotApplyElsewhere()
    {
        using var scope = torch.NewDisposeScope();
        var (x, k, b) = WinogradConvolutionTests.Operands(1, 32, 32, 8, 8, true, 42, ScalarType.Float32, false, false);
        Assert.True(Im2ColConvolution.Applies(x, k, b, 1));
        Assert.False(Im2ColConvolution.Applies(x, k, b, 3));                                        // stride 3
        Assert.False(Im2ColConvolution.Applies(x, k[.., .., ..1, ..1], b, 1));                      // 1×1 kernel
        Assert.False(Im2ColConvolution.Applies(x.to(ScalarType.Float16), k.to(ScalarType.Float16), b?.to(ScalarType.Float16), 1));
        Assert.False(Im2ColConvolution.Applies(x, k.to(ScalarType.Float64), b, 1));                 // mixed dtypes
        Assert.False(Im2ColConvolution.Applies(x.transpose(2, 3), k, b, 1));                        // neither layout
        using (torch.enable_grad())
        {
            var trained = k.clone().requires_grad_(true);
            Assert.False(Im2ColConvolution.Applies(x, trained, b, 1));                             // training: autograd's convolution
        }
        var ex = Assert.Throws<ArgumentException>(() => Im2ColConvolution.Run(x, k, b, 3));
        Assert.Contains("(1, 32, 8, 8)", ex.Message);
        Assert.Contains("stride 3", ex.Message);
    }

    [Theory]
    [InlineData(64, 1280, 1280, true)]      // SD's 8² layers at batch 1
    [InlineData(128, 2560, 1280, true)]     // and at batch 2
    [InlineData(256, 1280, 1280, false)]    // 16² at batch 1: Winograd's
    [InlineData(64, 4, 320, false)]         // 4 input channels
    [InlineData(64, 320, 4, false)]         // 4 output channels
    public void WorthwhileWhereMeasuredFaster(long positions, long cin, long cout, bool expected) =>
        Assert.Equal(expected, Im2ColConvolution.Worthwhile(positions, cin, cout));

    [Fact]
    public void LoRACompatibleConvAndDownsample2DRunIt()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using var g = new Generator(43);
        var conv = new LoRACompatibleConv(48, 64, 3, padding: 1);
        var x = torch.randn([2, 48, 6, 6], generator: g);   // 72 positions: this path
        Assert.NotNull(Im2ColConvolution.TryRun(x, conv.Weight, conv.Bias, 1));
        double diff = Tol.MaxAbsDiff(conv.forward(x).to(ScalarType.Float64), Float64Conv(x, conv.Weight, conv.Bias, 1));
        Assert.True(diff < 2e-5, $"conv: max |diff| {diff}");

        var down = new Downsample2D(48, useConv: true, outChannels: 64);
        var strided = (LoRACompatibleConv)down.named_children().Single().module;
        var y = torch.randn([1, 48, 12, 10], generator: g);   // 6 × 5 out
        Assert.NotNull(Im2ColConvolution.TryRun(y, strided.Weight, strided.Bias, 2));
        var got = down.Forward(y);
        Assert.Equal(new long[] { 1, 64, 6, 5 }, got.shape);
        diff = Tol.MaxAbsDiff(got.to(ScalarType.Float64), Float64Conv(y, strided.Weight, strided.Bias, 2));
        Assert.True(diff < 2e-5, $"downsampler: max |diff| {diff}");
        Assert.False(y.IsInvalid);
    }
}
