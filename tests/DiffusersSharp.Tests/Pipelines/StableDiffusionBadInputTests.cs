using System.Text.Json.Nodes;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>The issue's bad-input list, and the options (clip skip, generators, callback, cancellation) of the SD pipelines.</summary>
public class StableDiffusionBadInputTests(ITestOutputHelper log)
{
    private static string Model => StableDiffusionPipelineTests.Model;
    private const string Expected = "tiny-sd-expected.safetensors";

    private static string LongPrompt => string.Concat(Enumerable.Repeat("a very long prompt that keeps going ", 14)).TrimEnd();

    [Fact]
    public void PromptOver77TokensIsTruncatedWithAWarningAndEncodedAsDiffusers()
    {
        var logged = new List<string>();
        using var pipe = StableDiffusionPipeline.FromPretrained(Model, new() { Log = logged.Add });
        using var embeds = pipe.EncodePrompt(LongPrompt, doClassifierFreeGuidance: false);
        var warning = Assert.Single(logged);
        Assert.StartsWith("The following part of your input was truncated because CLIP can only handle sequences up to 77 tokens: ", warning);
        Assert.Null(embeds.NegativePromptEmbeds);
        using var all = Golden.Tensor(Expected, "text_encoder/last_hidden_state");
        double err = Tol.MaxAbsDiff(embeds.PromptEmbeds, all.narrow(0, 9, 1));
        log.WriteLine($"truncated 77-token prompt embeds: max abs error {err:E3}");
        Assert.True(err <= 1e-5);
    }

    [Fact]
    public void ClipSkipTakesTheEarlierLayerThroughTheFinalLayerNorm()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        using var skip1 = pipe.EncodePrompt("a photo of a cat", doClassifierFreeGuidance: false, clipSkip: 1);
        using var hs = Golden.Tensor(Expected, "text_encoder/hidden_states_prompts01"); // [6, 2, 77, 32]: embeddings + 5 layers
        using var noGrad = torch.no_grad();
        using var expected = pipe.TextEncoder.FinalLayerNorm(hs[4].narrow(0, 0, 1));
        double err = Tol.MaxAbsDiff(skip1.PromptEmbeds, expected);
        log.WriteLine($"clip_skip 1: max abs error {err:E3}");
        Assert.True(err <= 1e-5);
        var e = Assert.Throws<DiffusersException>(() => pipe.EncodePrompt("a", clipSkip: 6));
        Assert.Equal("StableDiffusionPipeline: clip_skip must be between 0 and the text encoder's 5 layers, got 6", e.Message);
    }

    [Theory]
    [InlineData(60, 64, "StableDiffusionPipeline: height and width have to be positive and divisible by 8 but are 60 and 64")]
    [InlineData(64, 36, "StableDiffusionPipeline: height and width have to be positive and divisible by 8 but are 64 and 36")]
    public void HeightOrWidthNotAMultipleOf8(int h, int w, string message)
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", height: h, width: w, numInferenceSteps: 1, seed: 0));
        Assert.Equal(message, e.Message);
    }

    [Theory]
    [InlineData(1.5)]
    [InlineData(-0.1)]
    public void StrengthOutsideZeroOne(double strength)
    {
        using var pipe = StableDiffusionImg2ImgPipeline.FromPretrained(Model);
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", init, strength, numInferenceSteps: 2, seed: 0));
        Assert.Equal($"StableDiffusionImg2ImgPipeline: the value of strength should be in [0.0, 1.0] but is {strength}", e.Message);
        // with DDIM, int(5 * 0.1) = 0 steps leaves an empty timestep slice (PNDM's repeated first timestep would leave one)
        using var loaded = pipe.Scheduler;
        pipe.Scheduler = DiffusersSharp.Schedulers.DDIMScheduler.FromConfig(loaded.Config);
        var e2 = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", init, 0.1, numInferenceSteps: 5, seed: 0));
        Assert.Contains("strength 0.1 with num_inference_steps 5 leaves no denoising step (int(5 * 0.1) = 0)", e2.Message);
    }

    [Fact]
    public void Img2ImgKeepsTheInitImageSizeRoundedDownToTheVaeFactor()
    {
        using var pipe = StableDiffusionImg2ImgPipeline.FromPretrained(Model);
        var init = ImageResize.Resize(Image.Load(Golden.Path("img2img-init.png")), 71, 49);
        using var result = pipe.Generate("a cat", init, 0.5, numInferenceSteps: 2, seed: 0);
        var img = Assert.Single(result.Images);
        Assert.Equal((70, 48), (img.Width, img.Height)); // vae_scale_factor 2: 71 -> 70, 49 -> 48
    }

    [Fact]
    public void InpaintResizesImageAndMaskOfAnotherSizeAndRejectsAMultiChannelMaskTensor()
    {
        using var folder = StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(folder.Path);
        using var trace = new SdTrace(pipe);
        var init = ImageResize.Resize(Image.Load(Golden.Path("img2img-init.png")), 80, 72);
        var mask = ImageResize.Resize(Image.Load(Golden.Path("inpaint-mask.png")), 32, 32, ResampleFilter.Nearest);
        using var result = pipe.Generate("a red ball", init, mask, numInferenceSteps: 1, seed: 0, outputType: OutputType.Np);
        Assert.Equal(new long[] { 1, 64, 64, 3 }, result.Array!.shape);
        Assert.Equal(new long[] { 1, 1, 64, 64 }, trace.One("mask_condition").shape);
        Assert.Equal(new long[] { 1, 3, 64, 64 }, trace.One("image_preprocessed").shape);
        // the mask drawn at 32x32 and resized: its rectangle covers the same region up to the resampling edge
        using var expectedMask = Golden.Tensor("tiny-sd-inpaint-expected.safetensors", "pipeline/pndm_default_strength1/mask_condition");
        using var agree = (trace.One("mask_condition") == expectedMask).to(ScalarType.Float64).mean();
        Assert.True(agree.item<double>() > 0.95, $"mask agreement {agree.item<double>():P2}");

        using var rgbMask = torch.ones(1, 3, 64, 64);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a red ball", init, rgbMask, numInferenceSteps: 1, seed: 0));
        Assert.Equal("the mask image is not greyscale-convertible: a mask tensor must have one channel, got shape [1, 3, 64, 64]", e.Message);
    }

    [Fact]
    public void MissingComponentIsNamed()
    {
        using var folder = StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder(withUnet: false);
        var e = Assert.Throws<ConfigException>(() => StableDiffusionInpaintPipeline.FromPretrained(folder.Path));
        Assert.Contains("the pipeline's 'unet' component folder is missing", e.Message);
        var index = JsonNode.Parse(File.ReadAllText(folder.File("model_index.json")))!.AsObject();
        index.Remove("vae");
        File.WriteAllText(folder.File("model_index.json"), index.ToJsonString());
        var e2 = Assert.Throws<ConfigException>(() => StableDiffusionInpaintPipeline.FromPretrained(folder.Path));
        Assert.Contains("the pipeline has no 'vae' component", e2.Message);
    }

    [Fact]
    public void TextEncoderHiddenSizeMustMatchCrossAttentionDim()
    {
        using var folder = StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        string cfg = folder.File("unet/config.json");
        var node = JsonNode.Parse(File.ReadAllText(cfg))!.AsObject();
        node["cross_attention_dim"] = 768;
        File.WriteAllText(cfg, node.ToJsonString());
        var e = Assert.Throws<ConfigException>(() => StableDiffusionInpaintPipeline.FromPretrained(folder.Path));
        Assert.Equal($"{folder.File("text_encoder/config.json")} and {cfg}: The text encoder's hidden_size is 32, but the UNet's cross_attention_dim is 768: the text encoder does not fit this UNet", e.Message);
        Assert.Equal(cfg, e.FilePath);
    }

    [Fact]
    public void PresentSafetyCheckerIsLoggedNotRun()
    {
        using var folder = StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        var index = JsonNode.Parse(File.ReadAllText(folder.File("model_index.json")))!.AsObject();
        index["safety_checker"] = new JsonArray("stable_diffusion", "StableDiffusionSafetyChecker");
        File.WriteAllText(folder.File("model_index.json"), index.ToJsonString());
        var logged = new List<string>();
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(folder.Path, new() { Log = logged.Add });
        var line = Assert.Single(logged);
        Assert.EndsWith("the 'safety_checker' component (stable_diffusion.StableDiffusionSafetyChecker) is not loaded or run by DiffusersSharp", line);
        using var generic = DiffusionPipeline.FromPretrained(Model);
        Assert.IsType<StableDiffusionPipeline>(generic);
    }

    [Fact]
    public void GeneratorListDrawsOneItemPerGeneratorAndMustMatchTheBatch()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        using var trace = new SdTrace(pipe);
        using var g0 = new Generator(0);
        using var g1 = new Generator(1);
        using var result = pipe.Generate("a photo of a cat", "", numImagesPerPrompt: 2, height: 64, width: 64, numInferenceSteps: 1,
            generators: [g0, g1], outputType: OutputType.Latent);
        Assert.Equal(new long[] { 2, 4, 32, 32 }, result.Tensor!.shape);
        using var golden = Golden.Tensor(Expected, "pipeline/pndm_default/initial_latents");
        Assert.Equal(0, Tol.MaxAbsDiff(trace.One("initial_latents").narrow(0, 0, 1), golden));
        Assert.True(Tol.MaxAbsDiff(trace.One("initial_latents").narrow(0, 1, 1), golden) > 0.1);
        using var g2 = new Generator(2);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a", generators: [g0, g1, g2], numInferenceSteps: 1));
        Assert.StartsWith("StableDiffusionPipeline: you have passed a list of generators of length 3, but requested an effective batch size of 1", e.Message);
    }

    [Fact]
    public void CallbackSeesEachStepsLatentsAndCancellationStopsTheLoop()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        using var cts = new CancellationTokenSource();
        using var g = Golden.Open(Expected);
        using var after = g.Load("pipeline/pndm_default/latents_after_step");
        var seen = new List<(int, double)>();
        var e = Assert.Throws<OperationCanceledException>(() => pipe.Generate("a photo of a cat", "", numInferenceSteps: 5, seed: 0,
            callbackOnStepEnd: (step, t, tensors) =>
            {
                seen.Add((step, t));
                Assert.Equal(["latents", "negative_prompt_embeds", "prompt_embeds"], tensors.Keys.Order());
                Assert.True(Tol.MaxAbsDiff(tensors["latents"], after[step]) < 1e-4);
                if (step == 1) cts.Cancel();
            }, cancellationToken: cts.Token));
        Assert.Equal(cts.Token, e.CancellationToken);   // stopped by the caller's token
        Assert.Equal(new[] { (0, 801.0), (1, 601.0) }, seen);
    }

    [Fact]
    public void FourChannelInpaintBlendsTheImageBackOutsideTheMask()
    {
        // An all-black mask keeps everything: after the last step the latents are the image latents themselves,
        // drawn first from the generator (the same posterior sample as diffusers' img2img run with seed 0).
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(Model);
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var black = new Image(64, 64, 1, new byte[64 * 64]);
        using var result = pipe.Generate("a photo of a cat", init, black, numInferenceSteps: 3, seed: 0, outputType: OutputType.Latent);
        using var expected = Golden.Tensor("tiny-sd-img2img-expected.safetensors", "pipeline/pndm_default/image_latents");
        double err = Tol.MaxAbsDiff(result.Tensor!, expected);
        log.WriteLine($"4-channel inpaint, black mask: final latents vs diffusers' image latents: max abs error {err:E3}");
        Assert.True(err <= 1e-4);
    }

    [Fact]
    public void GivenNegativePromptEmbedsMustHaveTheShapeOfThePromptEmbeddings()
    {
        // diffusers compares the shapes only when both embeddings are given, and fails on the guidance batch otherwise
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        using var one = torch.zeros(1, 77, 32);
        using var shorter = torch.zeros(1, 10, 32);
        Assert.Equal("StableDiffusionPipeline: negative_prompt_embeds have shape [1, 77, 32], but the prompt's are [2, 77, 32]; they must have the same shape",
            Assert.Throws<DiffusersException>(() => pipe.Generate(new[] { "a", "b" }, negativePromptEmbeds: one, numInferenceSteps: 1, seed: 0)).Message);
        Assert.Equal("StableDiffusionPipeline: negative_prompt_embeds have shape [1, 10, 32], but the prompt's are [1, 77, 32]; they must have the same shape",
            Assert.Throws<DiffusersException>(() => pipe.EncodePrompt("a", negativePromptEmbeds: shorter)).Message);
        // without guidance they are not used, as in diffusers
        using var unguided = pipe.EncodePrompt("a", doClassifierFreeGuidance: false, negativePromptEmbeds: shorter);
        Assert.Null(unguided.NegativePromptEmbeds);
    }

    [Fact]
    public void GivenPromptEmbedsMustHaveRowsTokensAndTheTextEncodersWidth()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        using var narrow = torch.zeros(1, 77, 16);
        Assert.Equal("StableDiffusionPipeline: prompt_embeds have hidden size 16, but the UNet takes 32 (the text encoder's hidden_size)",
            Assert.Throws<DiffusersException>(() => pipe.Generate(promptEmbeds: narrow, numInferenceSteps: 1, seed: 0)).Message);
        using var empty = torch.zeros(0, 77, 32);
        Assert.Equal("StableDiffusionPipeline: prompt_embeds must be [batch, sequence, hidden] with a batch and a sequence of at least 1, got [0, 77, 32]",
            Assert.Throws<DiffusersException>(() => pipe.Generate(promptEmbeds: empty, numInferenceSteps: 1, seed: 0)).Message);
    }

    [Fact]
    public void LatentsOfAnotherFloatTypeThanTheUNetsAreRefused()
    {
        // diffusers' Stable Diffusion pipelines use given latents as they are, and the UNet then fails on the dtype
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        using var doubles = torch.zeros(new long[] { 1, 4, 32, 32 }, ScalarType.Float64);
        Assert.Equal("StableDiffusionPipeline: latents are Float64, but the UNet runs in Float32; pass them in Float32",
            Assert.Throws<DiffusersException>(() => pipe.Generate("a", latents: doubles, numInferenceSteps: 1)).Message);
        using var inpaint = StableDiffusionInpaintPipeline.FromPretrained(Model);
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        Assert.Equal("StableDiffusionInpaintPipeline: latents are Float64, but the UNet runs in Float32; pass them in Float32",
            Assert.Throws<DiffusersException>(() => inpaint.Generate("a", init, mask, latents: doubles, numInferenceSteps: 1)).Message);
    }

    /// <summary>
    /// Integer latents: diffusers scales them by init_noise_sigma (a Python float) into float32, torch's default dtype,
    /// so a float32 UNet runs them as those values in float32 (the inpaint loop also blends with them as its noise); a
    /// bf16 UNet fails in diffusers on the float32 input, and is refused here before any step.
    /// </summary>
    [Fact]
    public void IntegerLatentsRunAsTheirValuesInFloat32WhereTheUNetRunsInFloat32()
    {
        using var ints = torch.randint(-3, 4, new long[] { 1, 4, 32, 32 }, ScalarType.Int64, generator: new Generator(3));
        using var floats = ints.to(ScalarType.Float32);
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        using var fromInts = pipe.Generate("a", latents: ints, numInferenceSteps: 2, outputType: OutputType.Latent);
        using var fromFloats = pipe.Generate("a", latents: floats, numInferenceSteps: 2, outputType: OutputType.Latent);
        Assert.Equal(0.0, Tol.MaxAbsDiff(fromInts.Tensor!, fromFloats.Tensor!));
        using var inpaint = StableDiffusionInpaintPipeline.FromPretrained(Model);
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        using var inpaintInts = inpaint.Generate("a", init, mask, latents: ints, numInferenceSteps: 2, outputType: OutputType.Latent, seed: 0);
        using var inpaintFloats = inpaint.Generate("a", init, mask, latents: floats, numInferenceSteps: 2, outputType: OutputType.Latent, seed: 0);
        Assert.Equal(0.0, Tol.MaxAbsDiff(inpaintInts.Tensor!, inpaintFloats.Tensor!));

        using var bf16 = StableDiffusionPipeline.FromPretrained(Model, new LoadOptions { Dtype = ScalarType.BFloat16 });
        Assert.Equal("StableDiffusionPipeline: latents are Int64, which scaling by init_noise_sigma turns into Float32, but the UNet runs in BFloat16; pass them in BFloat16",
            Assert.Throws<DiffusersException>(() => bf16.Generate("a", latents: ints, numInferenceSteps: 1)).Message);
    }

    [Theory]
    [InlineData(1, 2, 1, 1.0, "StableDiffusionInpaintPipeline: 2 images for a total batch size of 1 (prompts × images per prompt); pass a number of images that divides 1")]
    [InlineData(1, 1, 2, 1.0, "StableDiffusionInpaintPipeline: 2 masks for a total batch size of 1 (prompts × images per prompt); pass a number of masks that divides 1")]
    [InlineData(3, 2, 1, 0.5, "StableDiffusionInpaintPipeline: 2 images cannot be duplicated to the total batch size 3; pass a number of images that divides it")]
    [InlineData(6, 2, 3, 1.0, "StableDiffusionInpaintPipeline: 2 images and 3 masks do not pair up; pass one mask per image, or one image or one mask for all")]
    public void InpaintImagesAndMasksMustFitTheBatch(int prompts, int images, int masks, double strength, string message)
    {
        // diffusers keeps more images or masks than the batch and fails in the loop (or, with a 4-channel UNet, grows the
        // batch); images that do not divide it fail on adding the noise at strength < 1
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(Model);
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(Enumerable.Repeat("a red ball", prompts).ToArray(),
            Enumerable.Repeat(init, images).ToArray(), Enumerable.Repeat(mask, masks).ToArray(), strength: strength, numInferenceSteps: 2, seed: 0));
        Assert.Equal(message, e.Message);
    }
}
