using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>The parameter counts the memory check computes from a config alone agree with the built models.</summary>
public class ModelSizeTests
{
    private const double Tolerance = 0.02;

    private static void Close(double estimate, long actual) =>
        Assert.True(Math.Abs(estimate - actual) <= Tolerance * actual, $"estimate {estimate:F0}, actual {actual}");

    [Theory]
    [InlineData("tests/golden/tiny-ddpm/unet/config.json")]
    [InlineData("models/ddpm-cats-32/unet/config.json")]
    public void UNet2DModel(string config)
    {
        var c = ConfigJson.Read<UNet2DModelConfig>(Path.Combine(Golden.Dir, "..", "..", config));
        using var m = DiffusersSharp.Models.UNet2DModel.FromConfig(c);
        Close(ModelSize.UNet2D(c), m.NumParameters());
        // other block kinds and options
        var c2 = c with { ResnetTimeScaleShift = "scale_shift", AddAttention = false, TimeEmbeddingType = "fourier", LayersPerBlock = 1 };
        using var m2 = DiffusersSharp.Models.UNet2DModel.FromConfig(c2);
        Close(ModelSize.UNet2D(c2), m2.NumParameters());
    }

    [Fact]
    public void UNet2DConditionModelAutoencoderKLAndClip()
    {
        var u = ConfigJson.Read<UNet2DConditionModelConfig>(Golden.Path("tiny-sd", "unet", "config.json"));
        using (var m = DiffusersSharp.Models.UNet2DConditionModel.FromConfig(u)) Close(ModelSize.UNet2DCondition(u), m.NumParameters());
        var u2 = u with { TransformerLayersPerBlock = [2], LayersPerBlock = [1], CrossAttentionDim = [48] };
        using (var m = DiffusersSharp.Models.UNet2DConditionModel.FromConfig(u2)) Close(ModelSize.UNet2DCondition(u2), m.NumParameters());
        var v = ConfigJson.Read<AutoencoderKLConfig>(Golden.Path("tiny-sd", "vae", "config.json"));
        using (var m = AutoencoderKL.FromConfig(v)) Close(ModelSize.AutoencoderKL(v), m.parameters().Sum(p => p.numel()));
        var t = ConfigJson.Read<CLIPTextConfig>(Golden.Path("tiny-sd", "text_encoder", "config.json"));
        using (var m = new CLIPTextModel(t)) Close(ModelSize.Clip(t), m.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void AConfigLargerThanTheMachineIsRefusedBeforeAnythingIsAllocated()
    {
        var c = ConfigJson.Read<UNet2DModelConfig>(Golden.Path("tiny-ddpm", "unet", "config.json")) with { BlockOutChannels = [65536, 65536], NormNumGroups = 8 };
        var e = Assert.Throws<ConfigException>(() => DiffusersSharp.Models.UNet2DModel.FromConfig(c, "unet/config.json"));
        Assert.StartsWith("unet/config.json: this UNet2DModel config asks for ", e.Message);
        Assert.Contains(" even in bf16/fp16), more than this machine's ", e.Message);
    }
}
