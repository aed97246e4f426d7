using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Text;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>The SDXL text side and text-to-image runs of golden section F against diffusers 0.25.1.</summary>
public class StableDiffusionXLPipelineTests(ITestOutputHelper log)
{
    internal const string Expected = "tiny-sdxl-expected.safetensors";
    private const double Component = 1e-5;
    private const double Trajectory = 1e-4;
    // The VAE encoder: diffusers feeds it a channels-last view (README D).
    private const double Encoder = 1e-4;

    internal static string Base => Golden.Path("tiny-sdxl");
    internal static string Refiner => Golden.Path("tiny-sdxl-refiner");

    private static string[] Prompts()
    {
        using var json = Golden.Json("tiny-sdxl-expected.json");
        return json.RootElement.GetProperty("prompts").EnumerateArray().Select(p => p.GetString()!).ToArray();
    }

    [Fact]
    public void BothTokenizersMatchDiffusersWithTheirOwnPadTokens()
    {
        var prompts = Prompts();
        var t1 = CLIPTokenizer.FromPretrained(Base, "tokenizer");
        var t2 = CLIPTokenizer.FromPretrained(Base, "tokenizer_2");
        using var g = new SafetensorsLike(Expected);
        var ids1 = t1.Call(prompts, PaddingStrategy.MaxLength, 77, truncation: true);
        var ids2 = t2.Call(prompts, PaddingStrategy.MaxLength, 77, truncation: true);
        using var e1 = g.Load("tokenizer/input_ids");
        using var e2 = g.Load("tokenizer_2/input_ids");
        using var m2 = g.Load("tokenizer_2/attention_mask");
        using var a1 = ids1.InputIdsTensor(CPU);
        using var a2 = ids2.InputIdsTensor(CPU);
        using var am = ids2.AttentionMaskTensor(CPU);
        Assert.Equal(e1.data<long>().ToArray(), a1.data<long>().ToArray());
        Assert.Equal(e2.data<long>().ToArray(), a2.data<long>().ToArray());
        Assert.Equal(m2.data<long>().ToArray(), am.data<long>().ToArray());
        Assert.Equal(0, t2.PadTokenId);
        Assert.Equal(999, t1.PadTokenId);
    }

    [Fact]
    public void BothTextEncodersMatchDiffusers()
    {
        using var noGrad = torch.no_grad();
        using var g = new SafetensorsLike(Expected);
        using var text = CLIPTextModel.FromPretrained(Base, "text_encoder");
        using var text2 = CLIPTextModelWithProjection.FromPretrained(Base, "text_encoder_2");
        using var ids1 = g.Load("tokenizer/input_ids");
        using var ids2 = g.Load("tokenizer_2/input_ids");
        using (var o = text.Forward(ids1, outputHiddenStates: true))
        {
            SdTrace.Check(log, g, "text_encoder/last_hidden_state", o.LastHiddenState, Component);
            SdTrace.Check(log, g, "text_encoder/pooler_output", o.PoolerOutput, Component);
            SdTrace.Check(log, g, "text_encoder/hidden_states_penultimate", o.HiddenStates![^2], Component);
            using var all = torch.stack(o.HiddenStates.Select(h => h[0]).ToArray());
            SdTrace.Check(log, g, "text_encoder/hidden_states_all_prompt0", all, Component);
        }
        using (var o = text2.Forward(ids2, outputHiddenStates: true))
        {
            SdTrace.Check(log, g, "text_encoder_2/text_embeds", o.TextEmbeds, Component);
            SdTrace.Check(log, g, "text_encoder_2/last_hidden_state", o.LastHiddenState, Component);
            SdTrace.Check(log, g, "text_encoder_2/hidden_states_penultimate", o.HiddenStates![^2], Component);
            using var all = torch.stack(o.HiddenStates.Select(h => h[0]).ToArray());
            SdTrace.Check(log, g, "text_encoder_2/hidden_states_all_prompt0", all, Component);
        }
    }

    [Fact]
    public void EncodePromptConcatenatesThePenultimateStatesAndZeroesTheEmptyNegative()
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(Base);
        Assert.True(pipe.ForceZerosForEmptyPrompt);
        using var g = new SafetensorsLike(Expected);
        using var embeds = pipe.EncodePrompt("a photo of a cat");
        string p = "pipeline/txt2img_default/";
        using var states = torch.cat(new[] { embeds.NegativePromptEmbeds!, embeds.PromptEmbeds });
        using var pooled = torch.cat(new[] { embeds.NegativePooledPromptEmbeds!, embeds.PooledPromptEmbeds });
        SdTrace.Check(log, g, p + "unet_encoder_hidden_states", states, Component);
        SdTrace.Check(log, g, p + "unet_added_text_embeds", pooled, Component);
        Assert.Equal(0.0, embeds.NegativePromptEmbeds!.abs().max().item<float>());
        // the prompt's rows are the two encoders' penultimate states, text_encoder first (prompt 0 of the component cases)
        using var e1 = g.Load("text_encoder/hidden_states_penultimate");
        using var e2 = g.Load("text_encoder_2/hidden_states_penultimate");
        using var both = torch.cat(new[] { e1[0], e2[0] }, -1).unsqueeze(0);
        Tol.Close(embeds.PromptEmbeds, both, Component, "prompt embeds vs the two penultimate states");
    }

    [Fact]
    public void DefaultTextToImageRunMatchesDiffusers()
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(Base);
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate("a photo of a cat", numInferenceSteps: 4, guidanceScale: 5.0, height: 64, width: 64,
            outputType: OutputType.Np, seed: 0);
        CheckRun(log, trace, "txt2img_default", result.Array!, fullUnetOutput: true);
    }

    [Fact]
    public void TextToImageWithEveryOptionMatchesDiffusers()
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(Base);
        using var trace = new SdTrace(pipe);
        using var g1 = new Generator(1);
        using var g2 = new Generator(2);
        using var result = pipe.Generate("a red cube on a table", prompt2: "studio lighting, high detail", negativePrompt: "blurry",
            negativePrompt2: "low quality", numInferenceSteps: 3, guidanceScale: 6.0, guidanceRescale: 0.7, height: 48, width: 64,
            originalSize: (96, 128), cropsCoordsTopLeft: (8, 16), targetSize: (48, 64), negativeOriginalSize: (32, 32),
            negativeCropsCoordsTopLeft: (4, 0), negativeTargetSize: (40, 56), clipSkip: 1, numImagesPerPrompt: 2,
            outputType: OutputType.Np, generators: [g1, g2]);
        CheckRun(log, trace, "txt2img_full", result.Array!, fullUnetOutput: true);
        // the recorded rows alternate negative, positive (diffusers' cat([neg, pos]).repeat(batch, 1))
        using var ids = trace.One("unet_added_time_ids");
        Assert.Equal(new float[] { 32, 32, 4, 0, 40, 56, 96, 128, 8, 16, 48, 64, 32, 32, 4, 0, 40, 56, 96, 128, 8, 16, 48, 64 },
            ids.data<float>().ToArray());
    }

    [Fact]
    public void DenoisingEndStopsEarlyAndReturnsDiffusersLatents()
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(Base);
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate("a lighthouse at dusk", numInferenceSteps: 5, guidanceScale: 5.0, denoisingEnd: 0.8,
            height: 64, width: 64, outputType: OutputType.Latent, seed: 3);
        CheckRun(log, trace, "txt2img_denoising_end0.8_latent", result.Tensor!, fullUnetOutput: false, latentOutput: true);
    }

    /// <summary>
    /// diffusers 0.25.1 applies denoising_end only inside (0, 1) and runs every step otherwise: 1 (the end of a loop over
    /// 0.8, 0.9, 1.0) and more give diffusers' run without it.
    /// </summary>
    [Theory]
    [InlineData(1.0)]
    [InlineData(1.5)]
    public void DenoisingEndOfOneOrMoreRunsEveryStep(double denoisingEnd)
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(Base);
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate("a photo of a cat", numInferenceSteps: 4, guidanceScale: 5.0, height: 64, width: 64,
            denoisingEnd: denoisingEnd, outputType: OutputType.Np, seed: 0);
        CheckRun(log, trace, "txt2img_default", result.Array!, fullUnetOutput: true);
    }

    /// <summary>
    /// A denoising_end of 0 or below would stop before the first step; diffusers ignores it and runs every step, a run the
    /// value does not ask for, so it is refused, as NaN (which diffusers ignores too).
    /// </summary>
    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.5)]
    [InlineData(double.NaN)]
    public void DenoisingEndOfZeroOrBelowOrNaNIsRefused(double denoisingEnd)
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(Base);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("x", numInferenceSteps: 2, denoisingEnd: denoisingEnd));
        Assert.Equal($"StableDiffusionXLPipeline: denoising_end must be a fraction in (0, 1) of the schedule, or 1 (or more) for every step, got {denoisingEnd}", e.Message);
    }

    [Fact]
    public void DiffusionPipelineDispatchesTheSdxlFolder()
    {
        using var pipe = DiffusionPipeline.FromPretrained(Base);
        var xl = Assert.IsType<StableDiffusionXLPipeline>(pipe);
        Assert.NotNull(xl.TextEncoder);
        Assert.Contains(StableDiffusionXLPipeline.Name, DiffusionPipeline.KnownClasses);
    }

    [Fact]
    public void TheBasePipelineRefusesARefinerFolder()
    {
        var e = Assert.Throws<ConfigException>(() => StableDiffusionXLPipeline.FromPretrained(Refiner));
        Assert.Contains("_class_name is \"StableDiffusionXLImg2ImgPipeline\"", e.Message);
    }

    [Fact]
    public void OutOfRangeArgumentsAreRefusedWithTheirNames()
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(Base);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("x", numInferenceSteps: 2, originalSize: (0, 64)));
        Assert.Contains("original_size must be positive numbers, got (0, 64)", e.Message);
        e = Assert.Throws<DiffusersException>(() => pipe.Generate("x", numInferenceSteps: 2, cropsCoordsTopLeft: (-1, 0)));
        Assert.Contains("crops_coords_top_left must be non-negative numbers", e.Message);
        e = Assert.Throws<DiffusersException>(() => pipe.Generate("x", numInferenceSteps: 2, clipSkip: 3));
        Assert.Contains("clip_skip must be between 0 and 2", e.Message);
        using var embeds = torch.zeros(1, 77, 48);
        e = Assert.Throws<DiffusersException>(() => pipe.Generate(promptEmbeds: embeds, numInferenceSteps: 2));
        Assert.Contains("pooled_prompt_embeds also have to be passed", e.Message);
    }

    /// <summary>Compares one recorded SDXL run (README F's pipeline keys) with the golden run <paramref name="run"/>.</summary>
    internal static void CheckRun(ITestOutputHelper log, SdTrace trace, string run, Tensor output, bool fullUnetOutput, bool latentOutput = false)
    {
        using var g = new SafetensorsLike(Expected);
        string p = $"pipeline/{run}/";
        SdTrace.Check(log, g, p + "unet_encoder_hidden_states", trace.One("unet_encoder_hidden_states"), Component);
        SdTrace.Check(log, g, p + "unet_added_text_embeds", trace.One("unet_added_text_embeds"), Component);
        SdTrace.Check(log, g, p + "unet_added_time_ids", trace.One("unet_added_time_ids"), 0);
        // the noise and the VAE encodings: recorded by our run exactly where diffusers' run recorded them
        foreach (var (name, tol) in new[] { ("latent_noise", 0.0), ("vae_encode_0_mean", Encoder), ("vae_encode_0_std", Encoder),
                     ("vae_encode_1_mean", Encoder), ("vae_encode_1_std", Encoder) })
        {
            bool recorded = g.Contains(p + name);
            Assert.True(recorded == trace.Has(name), $"{p}{name}: diffusers {(recorded ? "recorded" : "did not record")} it, our run {(trace.Has(name) ? "did" : "did not")}");
            if (recorded) SdTrace.Check(log, g, p + name, trace.One(name), tol);
        }
        using var timesteps = g.Load(p + "timesteps");
        Assert.Equal((int)timesteps.shape[0], trace.Count("unet_output"));
        if (fullUnetOutput)
            using (var x = trace.Stacked("unet_output")) SdTrace.Check(log, g, p + "unet_output", x, Trajectory);
        else
            SdTrace.Check(log, g, p + "unet_output_step0", trace.Stacked("unet_output")[0], Trajectory);
        using (var x = trace.Stacked("latents_after_step")) SdTrace.Check(log, g, p + "latents_after_step", x, Trajectory);
        if (latentOutput) SdTrace.Check(log, g, p + "images", output, Trajectory);
        else SdTrace.CheckImages(log, g, p + "images", output);
    }
}
