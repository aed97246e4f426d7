using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Pipelines.SingleFile;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// Under bf16 the loaders keep the text encoder in fp32 (<see cref="StableDiffusionPipelineBase.TextEncoderDtype"/>): the
/// UNet and VAE are bf16, and the prompt embeddings are the fp32 encoder's, rounded to bf16 for the UNet.
/// </summary>
public class BFloat16TextEncoderTests
{
    [Fact]
    public void TextEncoderDtypeKeepsFp32OnlyUnderBf16()
    {
        Assert.Equal(ScalarType.Float32, StableDiffusionPipelineBase.TextEncoderDtype(ScalarType.BFloat16));
        Assert.Equal(ScalarType.Float16, StableDiffusionPipelineBase.TextEncoderDtype(ScalarType.Float16));
        Assert.Equal(ScalarType.Float32, StableDiffusionPipelineBase.TextEncoderDtype(ScalarType.Float32));
        Assert.Null(StableDiffusionPipelineBase.TextEncoderDtype(null));
    }

    [Fact]
    public void Bf16FolderPipelineEncodesPromptsInFp32AndHandsTheUNetBf16()
    {
        using var fp32 = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        using var bf16 = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model, new LoadOptions { Dtype = ScalarType.BFloat16 });
        Assert.Equal(ScalarType.Float32, bf16.TextEncoder.Dtype);
        Assert.Equal(ScalarType.BFloat16, bf16.Unet.DType);
        using var expected = fp32.EncodePrompt("a photo of a cat", doClassifierFreeGuidance: true);
        using var actual = bf16.EncodePrompt("a photo of a cat", doClassifierFreeGuidance: true);
        Assert.Equal(ScalarType.BFloat16, actual.PromptEmbeds.dtype);
        Assert.Equal(ScalarType.BFloat16, actual.NegativePromptEmbeds!.dtype);
        // the same fp32 encoder, then one rounding to bf16: bit-equal to the fp32 pipeline's embeddings rounded
        using var rounded = expected.PromptEmbeds.to(ScalarType.BFloat16);
        using var roundedNegative = expected.NegativePromptEmbeds!.to(ScalarType.BFloat16);
        Assert.Equal(0.0, MaxAbsDiff(rounded, actual.PromptEmbeds));
        Assert.Equal(0.0, MaxAbsDiff(roundedNegative, actual.NegativePromptEmbeds));
    }

    [Fact]
    public void Bf16SdxlFolderPipelineKeepsBothTextEncodersInFp32AndHandsTheUNetBf16()
    {
        using var fp32 = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        using var bf16 = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base, new LoadOptions { Dtype = ScalarType.BFloat16 });
        Assert.Equal(ScalarType.Float32, bf16.TextEncoder!.Dtype);
        Assert.Equal(ScalarType.Float32, bf16.TextEncoder2.Dtype);
        Assert.Equal(ScalarType.BFloat16, bf16.Unet.DType);
        using var expected = fp32.EncodePrompt("a photo of a cat", negativePrompt: "blurry");
        using var actual = bf16.EncodePrompt("a photo of a cat", negativePrompt: "blurry");
        // every embedding the UNet takes (states and pooled text_embeds) is the fp32 encoders' rounded once to bf16
        (Tensor Expected, Tensor? Actual)[] pairs =
        [
            (expected.PromptEmbeds, actual.PromptEmbeds), (expected.NegativePromptEmbeds!, actual.NegativePromptEmbeds),
            (expected.PooledPromptEmbeds, actual.PooledPromptEmbeds), (expected.NegativePooledPromptEmbeds!, actual.NegativePooledPromptEmbeds),
        ];
        foreach (var (e, a) in pairs)
        {
            Assert.Equal(ScalarType.BFloat16, a!.dtype);
            using var rounded = e.to(ScalarType.BFloat16);
            Assert.Equal(0.0, MaxAbsDiff(rounded, a));
        }
        using var image = bf16.Generate("a photo of a cat", numInferenceSteps: 2, height: 32, width: 32, outputType: OutputType.Np, seed: 0);
        Assert.Equal(new long[] { 1, 32, 32, 3 }, image.Array!.shape);
    }

    private static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var d = (a.to(ScalarType.Float32) - b.to(ScalarType.Float32)).abs().max();
        return d.item<float>();
    }

    [Fact]
    public void Bf16SingleFilePipelineKeepsItsTextEncoderInFp32()
    {
        var options = SingleFileGoldenTests.GoldenOptions() with { Dtype = ScalarType.BFloat16 };
        using var pipe = StableDiffusionPipeline.FromSingleFile(SingleFileGoldenTests.File, options);
        Assert.Equal(ScalarType.Float32, pipe.TextEncoder.Dtype);
        Assert.Equal(ScalarType.BFloat16, pipe.Unet.DType);
        using var embeds = pipe.EncodePrompt("a cat", doClassifierFreeGuidance: false);
        Assert.Equal(ScalarType.BFloat16, embeds.PromptEmbeds.dtype);
    }
}
