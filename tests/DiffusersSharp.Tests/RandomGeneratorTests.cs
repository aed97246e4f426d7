using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests;

/// <summary>TorchSharp's CPU generator against the torch RNG facts recorded in golden/rng.json.</summary>
public class RandomGeneratorTests
{
    [Fact]
    public void ManualSeed0Randn20MatchesTorch()
    {
        using var g = new Generator(0);
        using var x = torch.randn(new long[] { 20 }, generator: g);
        using var expected = Golden.Tensor("rng.safetensors", "seed0_randn20");
        Tol.Close(x, expected, 1e-6, "seed 0 randn(20)");
    }

    [Fact]
    public void Seed42Randn1x4x8x8MatchesTorch()
    {
        using var g = new Generator(42);
        using var x = torch.randn(new long[] { 1, 4, 8, 8 }, generator: g);
        using var expected = Golden.Tensor("rng.safetensors", "seed42_randn_1x4x8x8");
        Tol.Close(x, expected, 1e-6, "seed 42 randn(1,4,8,8)");
    }
}
