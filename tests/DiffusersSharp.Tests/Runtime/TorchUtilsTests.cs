using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>diffusers' <c>randn_tensor</c>: one generator, a list of generators, reduced precision.</summary>
public class TorchUtilsTests
{
    [Fact]
    public void OneGeneratorIsTorchRandnOfThatGenerator()
    {
        using var g = new Generator(42);
        using var x = TorchUtils.RandnTensor([1, 4, 8, 8], g, ScalarType.Float32, CPU);
        using var expected = Golden.Tensor("rng.safetensors", "seed42_randn_1x4x8x8");
        Assert.Equal(0, Tol.MaxAbsDiff(x, expected));
    }

    [Fact]
    public void AListDrawsItemIFromGeneratorI()
    {
        using var g0 = new Generator(3);
        using var g1 = new Generator(4);
        using var x = TorchUtils.RandnTensor([2, 4, 8, 8], [g0, g1], ScalarType.Float32, CPU);
        using var h0 = new Generator(3);
        using var h1 = new Generator(4);
        using var a = torch.randn(new long[] { 1, 4, 8, 8 }, generator: h0);
        using var b = torch.randn(new long[] { 1, 4, 8, 8 }, generator: h1);
        Assert.Equal(0, Tol.MaxAbsDiff(x, torch.cat([a, b])));
        // a list of one generator is that generator
        using var k = new Generator(3);
        using var one = TorchUtils.RandnTensor([2, 4, 8, 8], [k], ScalarType.Float32, CPU);
        using var l = new Generator(3);
        Assert.Equal(0, Tol.MaxAbsDiff(one, torch.randn(new long[] { 2, 4, 8, 8 }, generator: l)));
        var e = Assert.Throws<DiffusersException>(() => TorchUtils.RandnTensor([3, 4], [g0, g1], ScalarType.Float32, CPU));
        Assert.StartsWith("You have passed a list of generators of length 2, but requested an effective batch size of 3.", e.Message);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void ReducedPrecisionIsTheRoundedFloat32Draw(ScalarType dtype)
    {
        using var g = new Generator(7);
        using var x = TorchUtils.RandnTensor([2, 4, 8, 8], g, dtype, CPU);
        Assert.Equal(dtype, x.dtype);
        using var h = new Generator(7);
        using var full = torch.randn(new long[] { 2, 4, 8, 8 }, generator: h);
        Assert.Equal(0, Tol.MaxAbsDiff(x, full.to(dtype)));
    }
}
