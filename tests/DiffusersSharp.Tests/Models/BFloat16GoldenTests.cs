using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// Whole models converted to bfloat16 (channels-last, the default) against diffusers' float32 golden outputs.
/// bfloat16 keeps 8 mantissa bits (relative step 2^-8 ≈ 0.004); measured on the tiny models: UNet max |diff|
/// 0.021 (mean 0.0036) for outputs up to 1.3, VAE decode 0.031 (mean 0.0043). The bounds below allow ~2×.
/// </summary>
public class BFloat16GoldenTests
{
    private const string Expected = "tiny-sd-expected.safetensors";

    [Fact]
    public void BFloat16UNet2DConditionModel_StaysCloseToDiffusersFloat32()
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), subfolder: "unet");
        unet.to(ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, unet.DType);
        using var x = Golden.Tensor(Expected, "unet/x");
        using var ehs = Golden.Tensor(Expected, "unet/encoder_hidden_states");
        using var expected = Golden.Tensor(Expected, "unet/t500/out");
        using var xb = x.to(ScalarType.BFloat16);
        using var eb = ehs.to(ScalarType.BFloat16);
        using var output = unet.Forward(xb, 500L, eb).Sample;
        Assert.Equal(ScalarType.BFloat16, output.dtype);
        using var output32 = output.to(ScalarType.Float32);
        Tol.Close(output32, expected, 0.05, "bf16 UNet vs diffusers fp32");
        Assert.True((output32 - expected).abs().mean().item<float>() < 0.008);
    }

    [Fact]
    public void BFloat16VaeDecode_StaysCloseToDiffusersFloat32()
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderKLGoldenTests.LoadTiny();
        vae.to(ScalarType.BFloat16);
        using var z = Golden.Tensor(Expected, "vae/z");
        using var expected = Golden.Tensor(Expected, "vae/decode");
        using var zb = z.to(ScalarType.BFloat16);
        using var output = vae.Decode(zb).Sample;
        Assert.Equal(ScalarType.BFloat16, output.dtype);
        using var output32 = output.to(ScalarType.Float32);
        Tol.Close(output32, expected, 0.07, "bf16 VAE decode vs diffusers fp32");
        Assert.True((output32 - expected).abs().mean().item<float>() < 0.01);
    }
}
