using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Models;
using DiffusersSharp.Tests.Pipelines.SingleFile;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Loading;

/// <summary>
/// A model built for a checkpoint's strict load leaves its weights uninitialised (<see cref="ModelBuild.ForCheckpoint"/>), as
/// diffusers' default load does under accelerate's <c>init_empty_weights</c>: loading draws no random numbers from torch's
/// global generator. A model built on its own (training, <c>FromConfig</c>) is still initialised as PyTorch does. These
/// tests read torch's process-wide generator, so they run alone (the serial collection).
/// </summary>
[Collection(DefaultDeviceCollection.Name)]
public class UninitializedBuildTests
{
    [Fact]
    public void LoadingDrawsNoRandomNumbers()
    {
        // the single-file golden options hold a text encoder the test builds itself (randomly initialised): made first;
        // so is a UNet2DModel folder with Gaussian Fourier time features (their frequencies are drawn at construction)
        var singleFile = SingleFileGoldenTests.GoldenOptions();
        using var dir = new TempDir();
        var fourierConfig = ModelLoading.ReadConfig<UNet2DModelConfig>(Golden.Path("tiny-ddpm", "unet")) with { TimeEmbeddingType = "fourier" };
        using (var fourier = UNet2DModel.FromConfig(fourierConfig)) fourier.SavePretrained(dir.Path);
        torch.manual_seed(20261204);
        using var expected = torch.rand(16);
        torch.manual_seed(20261204);
        using (UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), "unet", new LoadOptions { Dtype = ScalarType.BFloat16 }))
        using (AutoencoderKL.FromPretrained(Golden.Path("tiny-sd"), "vae"))
        using (CLIPTextModel.FromPretrained(Golden.Path("tiny-sd"), "text_encoder"))
        using (CLIPTextModelWithProjection.FromPretrained(Golden.Path("tiny-sdxl"), "text_encoder_2"))
        using (AutoencoderTiny.FromPretrained(Golden.Path("tiny-taesd")))
        using (UNet2DModel.FromPretrained(Golden.Path("tiny-ddpm"), "unet"))
        using (UNet2DModel.FromPretrained(dir.Path))
        using (ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet")))
        using (StableDiffusionPipeline.FromSingleFile(SingleFileGoldenTests.File, singleFile))
        using (StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd")))
        {
        }
        using var after = torch.rand(16);
        Assert.True(after.eq(expected).all().item<bool>(), $"the loads drew random numbers: {after.str()} vs {expected.str()}");
    }

    [Fact]
    public void AModelBuiltOnItsOwnIsInitialisedAsPyTorch()
    {
        var config = ModelLoading.ReadConfig<UNet2DConditionModelConfig>(Golden.Path("tiny-sd", "unet"));
        torch.manual_seed(7);
        using var a = UNet2DConditionModel.FromConfig(config);
        torch.manual_seed(7);
        using var b = UNet2DConditionModel.FromConfig(config);
        var pa = a.named_parameters().ToList();
        var pb = b.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter);
        foreach (var (name, p) in pa)
            Assert.True(p.eq(pb[name]).all().item<bool>(), $"{name} differs between two builds from the same seed");
        // a convolution's and a linear layer's kaiming-uniform weights: within ±1/sqrt(fan_in), not all one value
        foreach (string name in new[] { "conv_in.weight", "time_embedding.linear_1.weight", "down_blocks.0.resnets.0.conv1.weight" })
        {
            var w = pb[name];
            long fanIn = w.numel() / w.shape[0];
            double bound = 1 / Math.Sqrt(fanIn);
            Assert.True(w.abs().max().item<float>() <= bound + 1e-6, $"{name} exceeds the kaiming bound {bound}");
            Assert.True(w.std().item<float>() > bound / 4, $"{name} is not spread like a kaiming-uniform draw");
        }
    }

    [Fact]
    public void TheFlagHoldsOnlyDuringTheBuild()
    {
        bool during = false;
        using (ModelLoading.FromPretrained<UNet2DConditionModelConfig, UNet2DConditionModel>(Golden.Path("tiny-sd", "unet"), null, null,
                   c => { during = ModelBuild.ForCheckpoint; return UNet2DConditionModel.FromConfig(c); })) { }
        Assert.True(during);
        Assert.False(ModelBuild.ForCheckpoint);
        // the build's own exception comes out as it was thrown, and the flag is reset
        var failure = new InvalidOperationException("the build failed");
        Assert.Same(failure, Assert.Throws<InvalidOperationException>(() => ModelBuild.Run<int>(null, forCheckpoint: true, () => throw failure)));
        Assert.False(ModelBuild.ForCheckpoint);
    }
}
