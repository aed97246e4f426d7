using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// The SDXL pipelines refuse prompt arguments and embeddings of another batch or shape than the prompt's, and inpaint
/// masks beyond the batch, with messages naming the argument (diffusers fails on the concatenation, or grows the batch).
/// </summary>
public class StableDiffusionXLBadInputTests
{
    private static string Base => StableDiffusionXLPipelineTests.Base;

    private static string Refused(Action call) => Assert.Throws<DiffusersException>(call).Message;

    [Fact]
    public void SecondPromptsMustHaveThePromptsBatch()
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(Base);
        Assert.Equal("StableDiffusionXLPipeline: prompt_2 [\"x\", \"y\"] has batch size 2, but prompt \"a\" has batch size 1",
            Refused(() => pipe.Generate("a", new[] { "x", "y" }, numInferenceSteps: 1, seed: 0)));
        // diffusers does not repeat a single prompt_2 for a list of prompts (it does a single negative_prompt_2)
        Assert.Equal("StableDiffusionXLPipeline: prompt_2 \"x\" has batch size 1, but prompt [\"a\", \"b\"] has batch size 2",
            Refused(() => pipe.Generate(new[] { "a", "b" }, "x", numInferenceSteps: 1, seed: 0)));
        Assert.Equal("StableDiffusionXLPipeline: negative_prompt_2 [\"x\", \"y\"] has batch size 2, but prompt \"a\" has batch size 1",
            Refused(() => pipe.Generate("a", negativePrompt: "n", negativePrompt2: new[] { "x", "y" }, numInferenceSteps: 1, seed: 0)));
    }

    [Fact]
    public void GivenEmbeddingsMustHaveThePromptsShapes()
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(Base);
        using var e = pipe.EncodePrompt("a", negativePrompt: "n");
        using var twoPooled = torch.cat(new[] { e.PooledPromptEmbeds, e.PooledPromptEmbeds });
        Assert.Equal("StableDiffusionXLPipeline: pooled_prompt_embeds have shape [2, 24], but must be [1, 24] (a row per row of prompt_embeds, text_encoder_2's projection_dim)",
            Refused(() => pipe.Generate(promptEmbeds: e.PromptEmbeds, pooledPromptEmbeds: twoPooled, numInferenceSteps: 1, seed: 0)));
        using var narrow = torch.zeros(1, 77, 32);
        Assert.Equal("StableDiffusionXLPipeline: prompt_embeds have hidden size 32, but the UNet takes 48 (the text encoders' hidden sizes added)",
            Refused(() => pipe.Generate(promptEmbeds: narrow, pooledPromptEmbeds: e.PooledPromptEmbeds, numInferenceSteps: 1, seed: 0)));
        Assert.Equal("StableDiffusionXLPipeline: negative_prompt_embeds have shape [1, 77, 48], but the prompt's are [2, 77, 48]; they must have the same shape",
            Refused(() => pipe.Generate(new[] { "a", "b" }, negativePromptEmbeds: e.NegativePromptEmbeds, negativePooledPromptEmbeds: e.NegativePooledPromptEmbeds,
                numInferenceSteps: 1, seed: 0)));
        Assert.Equal("StableDiffusionXLPipeline: negative_pooled_prompt_embeds have shape [2, 24], but the prompt's are [1, 24]; they must have the same shape",
            Refused(() => pipe.Generate(promptEmbeds: e.PromptEmbeds, pooledPromptEmbeds: e.PooledPromptEmbeds, negativePromptEmbeds: e.NegativePromptEmbeds,
                negativePooledPromptEmbeds: twoPooled, numInferenceSteps: 1, seed: 0)));
    }

    [Fact]
    public void ARefinersPromptEmbedsHaveTextEncoder2sWidth()
    {
        // a refiner has only text_encoder_2: its prompt_embeds are that encoder's hidden_size wide (the UNet's cross_attention_dim)
        using var pipe = StableDiffusionXLImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Refiner);
        using var e = pipe.EncodePrompt("a", negativePrompt: "n");
        Assert.Equal(pipe.TextEncoder2.Config.HiddenSize, e.PromptEmbeds.shape[2]);
        using var wide = torch.zeros(1, 77, e.PromptEmbeds.shape[2] + 16);
        Assert.Equal($"StableDiffusionXLImg2ImgPipeline: prompt_embeds have hidden size {e.PromptEmbeds.shape[2] + 16}, but the UNet takes " +
                     $"{e.PromptEmbeds.shape[2]} (text_encoder_2's hidden_size)",
            Refused(() => pipe.EncodePrompt(default, promptEmbeds: wide, pooledPromptEmbeds: e.PooledPromptEmbeds)));
        using var narrowPooled = e.PooledPromptEmbeds.narrow(1, 0, 8);
        Assert.Equal($"StableDiffusionXLImg2ImgPipeline: pooled_prompt_embeds have shape [1, 8], but must be [1, {e.PooledPromptEmbeds.shape[1]}] " +
                     "(a row per row of prompt_embeds, text_encoder_2's projection_dim)",
            Refused(() => pipe.EncodePrompt(default, promptEmbeds: e.PromptEmbeds, pooledPromptEmbeds: narrowPooled)));
    }

    [Fact]
    public void InpaintLatentsGivenAsTheImageBeyondTheBatchAreRefused()
    {
        // the base run's latents as the image (4 channels): before, two rows for one prompt were repeated 1 / 2 = 0 times,
        // an empty batch the call then ran on
        using var pipe = StableDiffusionXLInpaintPipeline.FromPretrained(Base);
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        using var latents = torch.randn(2, 4, 32, 32);
        Assert.Equal("StableDiffusionXLInpaintPipeline: 2 images for a total batch size of 1 (prompts × images per prompt); pass a number of images that divides 1",
            Refused(() => pipe.Generate("a", latents, mask, numInferenceSteps: 2, seed: 0, outputType: OutputType.Latent)));
        Assert.Equal("StableDiffusionXLInpaintPipeline: 2 images for a total batch size of 1 (prompts × images per prompt); pass a number of images that divides 1",
            Refused(() => pipe.Generate("a", latents, mask, numInferenceSteps: 4, denoisingStart: 0.5, seed: 0, outputType: OutputType.Latent)));
    }

    [Fact]
    public void InpaintImagesOrMasksBeyondTheBatchAreRefusedNotBroadcast()
    {
        // before: two masks for one prompt grew the 4-channel blend's batch to two and returned two images
        using var pipe = StableDiffusionXLInpaintPipeline.FromPretrained(Base);
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        Assert.Equal("StableDiffusionXLInpaintPipeline: 2 masks for a total batch size of 1 (prompts × images per prompt); pass a number of masks that divides 1",
            Refused(() => pipe.Generate("a", init, new[] { mask, mask }, numInferenceSteps: 2, seed: 0, outputType: OutputType.Latent)));
        Assert.Equal("StableDiffusionXLInpaintPipeline: 2 images for a total batch size of 1 (prompts × images per prompt); pass a number of images that divides 1",
            Refused(() => pipe.Generate("a", new[] { init, init }, mask, numInferenceSteps: 2, seed: 0, outputType: OutputType.Latent)));
        Assert.Equal("StableDiffusionXLInpaintPipeline: 2 images and 3 masks do not pair up; pass one mask per image, or one image or one mask for all",
            Refused(() => pipe.Generate(Enumerable.Repeat("a", 6).ToArray(), new[] { init, init }, new[] { mask, mask, mask }, numInferenceSteps: 2, seed: 0)));
    }
}
