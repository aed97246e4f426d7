using DiffusersSharp.Loading;
using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;

namespace DiffusersSharp.Pipelines.SingleFile;

/// <summary>
/// Everything a single file becomes in diffusers' terms: the family, the component configs, the scheduler, and one
/// <see cref="KeyMap"/> per component. <see cref="Resolve"/> builds it for a file (from its keys and shapes, an original
/// YAML, or a diffusers folder's configs); <see cref="FromFolder"/> for a diffusers folder to write in the original layout.
/// </summary>
public sealed class SingleFileLayout
{
    /// <summary>Which Stable Diffusion family the file belongs to (SD 1.x, 2.x, XL, XL refiner).</summary>
    public required StableDiffusionFamily Family { get; init; }
    /// <summary>The diffusers config of the UNet.</summary>
    public required UNet2DConditionModelConfig Unet { get; init; }
    /// <summary>The diffusers config of the VAE.</summary>
    public required AutoencoderKLConfig Vae { get; init; }
    /// <summary>The text encoders, in diffusers' order (<c>text_encoder</c>, <c>text_encoder_2</c>).</summary>
    public required IReadOnlyList<TextEncoderLayout> TextEncoders { get; init; }
    /// <summary>
    /// The scheduler the pipeline gets (built from the schedule in the file's config and <c>scheduler_type</c>).
    /// </summary>
    public required SchedulerBase Scheduler { get; init; }
    /// <summary>The key map of the UNet (original ↔ diffusers names).</summary>
    public required KeyMap UnetKeys { get; init; }
    /// <summary>The key map of the VAE (original ↔ diffusers names).</summary>
    public required KeyMap VaeKeys { get; init; }

    /// <summary>The diffusers folder the configs (and tokenizers) came from, when one was given.</summary>
    public string? ConfigFolder { get; init; }

    /// <summary>Every component's key map: UNet, VAE, text encoders.</summary>
    public IEnumerable<KeyMap> KeyMaps => new[] { UnetKeys, VaeKeys }.Concat(TextEncoders.Select(t => t.Keys));

    /// <summary>The pipeline class diffusers builds for this family (9 input channels: the inpainting one).</summary>
    public string PipelineClassName => PipelineClass(Family, Unet.InChannels);

    /// <summary>The pipeline class for a family and UNet input channel count.</summary>
    public static string PipelineClass(StableDiffusionFamily family, long inChannels) => family switch
    {
        StableDiffusionFamily.StableDiffusionXLRefiner => "StableDiffusionXLImg2ImgPipeline",
        StableDiffusionFamily.StableDiffusionXL => inChannels == 9 ? "StableDiffusionXLInpaintPipeline" : "StableDiffusionXLPipeline",
        _ => inChannels == 9 ? StableDiffusionInpaintPipeline.Name : StableDiffusionPipeline.Name,
    };

    /// <summary>The text encoders a family has, where the original file keeps them, and their tokenizers.</summary>
    private sealed record TextSpec(string Name, bool OpenClip, bool WithProjection, string Prefix, string TokenizerName, string PadToken);

    private static IReadOnlyList<TextSpec> TextSpecs(StableDiffusionFamily family) => family switch
    {
        StableDiffusionFamily.StableDiffusion1 => [new("text_encoder", false, false, TextEncoderKeyRules.Sd1Prefix, "tokenizer", Text.ClipVocabulary.EndOfText)],
        StableDiffusionFamily.StableDiffusion2 => [new("text_encoder", true, false, TextEncoderKeyRules.Sd2Prefix, "tokenizer", "!")],
        StableDiffusionFamily.StableDiffusionXL =>
        [
            new("text_encoder", false, false, TextEncoderKeyRules.XlFirstPrefix, "tokenizer", Text.ClipVocabulary.EndOfText),
            new("text_encoder_2", true, true, TextEncoderKeyRules.XlSecondPrefix, "tokenizer_2", "!"),
        ],
        _ => [new("text_encoder_2", true, true, TextEncoderKeyRules.XlRefinerPrefix, "tokenizer_2", "!")],
    };

    private static TextEncoderLayout Layout(TextSpec s, CLIPTextConfig config) => new(s.Name, config, s.WithProjection, s.OpenClip,
        s.OpenClip ? TextEncoderKeyRules.OpenClip(s.Name, s.Prefix, config, s.WithProjection) : TextEncoderKeyRules.OpenAi(s.Name, s.Prefix),
        s.TokenizerName, s.PadToken);

    /// <summary>
    /// The layout of <paramref name="ckpt"/>: its family from its keys, then the configs from <see cref="SingleFileOptions.Config"/>
    /// (a diffusers folder or Hub id), <see cref="SingleFileOptions.OriginalConfigFile"/> (an original YAML), or inferred from the
    /// shapes (<see cref="LdmInference"/>), with diffusers' defaults for the image size, prediction type and scheduler.
    /// </summary>
    public static SingleFileLayout Resolve(OriginalCheckpoint ckpt, SingleFileOptions? options = null)
    {
        var o = options ?? SingleFileOptions.Default;
        var family = CheckpointInspection.DetectFamily(ckpt);
        if (o.Config is not null) return FromConfigFolder(ckpt, family, o);

        LdmConfig ldm;
        bool inferred = o.OriginalConfigFile is null;
        if (inferred) ldm = LdmInference.Infer(ckpt, family);
        else
        {
            ldm = LdmConfig.FromYaml(YamlNode.Load(o.OriginalConfigFile!));
            var yamlFamily = FamilyOf(ldm);
            if (yamlFamily is { } yf && yf != family && TextSpecs(family).Any(s => HasPrefix(ckpt, s.Prefix)))
                throw new ConfigException(
                    $"{o.OriginalConfigFile} describes a {yf} model (text encoder {string.Join(" + ", ldm.TextEncoders)}), but {ckpt.Path} holds a {family} one")
                { FilePath = o.OriginalConfigFile, Key = "cond_stage_config" };
            family = yamlFamily ?? family;
            // diffusers takes the input channels from the pipeline class (9 for inpainting); here from the file itself.
            if (ckpt.Shape(UNetKeyRules.Prefix + "input_blocks.0.0.weight") is { } convIn) ldm = ldm with { InChannels = (int)convIn[1] };
        }
        bool xl = CheckpointInspection.IsXl(family);
        bool v = ldm.Parameterization == "v";
        bool sd2Base = ckpt.GlobalStep == 875000;   // diffusers' (brittle) test for the 512-pixel epsilon SD 2 base
        int imageSize = o.ImageSize ?? (v ? (sd2Base ? 512 : 768) : xl ? 1024 : 512);
        string prediction = o.PredictionType ?? (v && !sd2Base ? "v_prediction" : "epsilon");
        bool? upcast = o.UpcastAttention ?? (inferred && family == StableDiffusionFamily.StableDiffusion2 && ckpt.GlobalStep == 110000 ? true : null);
        if (!xl && prediction is not ("epsilon" or "v_prediction"))
            throw new ConfigException($"prediction_type '{prediction}' is not 'epsilon' or 'v_prediction'") { Key = "prediction_type" };

        var unet = DiffusersConfigs.Unet(ldm, imageSize, upcast);
        var vae = DiffusersConfigs.Vae(ldm, imageSize);
        var texts = TextSpecs(family).Select((s, i) => Layout(s, TextConfig(ckpt, s, family, i == 0 ? o.TextEncoder?.Config : null))).ToList();
        return new SingleFileLayout
        {
            Family = family, Unet = unet, Vae = vae, TextEncoders = texts,
            Scheduler = DiffusersConfigs.Scheduler(ldm, xl, prediction, o.SchedulerType),
            UnetKeys = UNetKeyRules.Create(unet), VaeKeys = VaeKeyRules.Create(vae),
        };
    }

    private static StableDiffusionFamily? FamilyOf(LdmConfig ldm)
    {
        var t = ldm.TextEncoders;
        if (t.Contains("FrozenOpenCLIPEmbedder2")) return t.Contains("FrozenCLIPEmbedder") ? StableDiffusionFamily.StableDiffusionXL : StableDiffusionFamily.StableDiffusionXLRefiner;
        if (t.Contains("FrozenOpenCLIPEmbedder")) return StableDiffusionFamily.StableDiffusion2;
        if (t.Contains("FrozenCLIPEmbedder")) return StableDiffusionFamily.StableDiffusion1;
        if (t.Count > 0)
            throw new ConfigException($"{ldm.Source}: unsupported text encoder '{string.Join(", ", t)}' (single files of SD 1.x, 2.x and SDXL are supported)")
            { FilePath = ldm.Source, Key = "cond_stage_config.target" };
        return null;
    }

    private static CLIPTextConfig TextConfig(OriginalCheckpoint ckpt, TextSpec s, StableDiffusionFamily family, CLIPTextConfig? given)
    {
        if (given is not null) return given;
        if (!HasPrefix(ckpt, s.Prefix))
            throw new WeightsException($"{ckpt.Path}: the file has no {s.Name} weights ({s.Prefix}*); pass a text encoder")
            { FilePath = ckpt.Path, Key = s.Prefix };
        return s.OpenClip
            ? LdmInference.OpenClipTextConfig(ckpt, s.Prefix, sd2: family == StableDiffusionFamily.StableDiffusion2)
            : LdmInference.OpenAiTextConfig(ckpt, s.Prefix);
    }

    private static bool HasPrefix(OriginalCheckpoint ckpt, string prefix) =>
        ckpt.Shapes.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));

    private static SingleFileLayout FromConfigFolder(OriginalCheckpoint ckpt, StableDiffusionFamily family, SingleFileOptions o) =>
        FromFolder(PretrainedLocator.Resolve(o.Config!), family, o.TextEncoder?.Config);

    /// <summary>
    /// The layout of a diffusers pipeline folder: its configs and scheduler, and the family from its components
    /// (<paramref name="family"/> when known; otherwise text_encoder_2 makes SDXL, a gelu text encoder SD 2.x).
    /// </summary>
    public static SingleFileLayout FromFolder(string folder, StableDiffusionFamily? family = null, CLIPTextConfig? firstTextEncoder = null)
    {
        var index = PipelineIndex.Read(PipelinePaths.ModelIndex(folder));
        var f = family ?? (index.Component("text_encoder_2") is not null
            ? index.Component("text_encoder") is not null ? StableDiffusionFamily.StableDiffusionXL : StableDiffusionFamily.StableDiffusionXLRefiner
            : ReadText(folder, "text_encoder").HiddenAct == "gelu" ? StableDiffusionFamily.StableDiffusion2 : StableDiffusionFamily.StableDiffusion1);
        var unet = ConfigJson.Read<UNet2DConditionModelConfig>(Path.Combine(PipelinePaths.Component(folder, "unet"), ModelLoading.ConfigName));
        var vae = ConfigJson.Read<AutoencoderKLConfig>(Path.Combine(PipelinePaths.Component(folder, "vae"), ModelLoading.ConfigName));
        var texts = TextSpecs(f).Select((s, i) => Layout(s, i == 0 && firstTextEncoder is not null ? firstTextEncoder : ReadText(folder, s.Name))).ToList();
        return new SingleFileLayout
        {
            Family = f, Unet = unet, Vae = vae, TextEncoders = texts,
            Scheduler = SchedulerFactory.FromPretrained(PipelinePaths.Component(folder, "scheduler"), subfolder: null),
            UnetKeys = UNetKeyRules.Create(unet), VaeKeys = VaeKeyRules.Create(vae), ConfigFolder = folder,
        };
    }

    private static CLIPTextConfig ReadText(string folder, string name)
    {
        string path = Path.Combine(PipelinePaths.Component(folder, name), "config.json");
        var config = ConfigJson.Read<CLIPTextConfig>(path);
        config.Validate(path);
        return config;
    }

    /// <summary>
    /// The file's keys by component. Training state that no diffusers model holds (the LDM noise-schedule buffers,
    /// EMA copies, the VAE's training loss, SGM's denoiser sigmas) is left out; any other key that no component
    /// explains is an error naming it.
    /// </summary>
    public IReadOnlyDictionary<KeyMap, List<string>> Assign(OriginalCheckpoint ckpt)
    {
        var maps = KeyMaps.ToList();
        var result = maps.ToDictionary(m => m, _ => new List<string>());
        var unknown = new List<string>();
        foreach (var key in ckpt.Shapes.Keys.OrderBy(k => k, StringComparer.Ordinal))
        {
            var map = maps.FirstOrDefault(m => m.Covers(key));
            if (map is not null) result[map].Add(key);
            else if (!IsTrainingState(key)) unknown.Add(key);
        }
        if (unknown.Count > 0)
            throw new WeightsException($"{ckpt.Path}: key(s) that belong to no component of a {Family} checkpoint: {KeyMap.Summarize(unknown)}")
            { FilePath = ckpt.Path, Key = unknown[0] };
        return result;
    }

    private static readonly HashSet<string> TrainingBuffers = new(StringComparer.Ordinal)
    {
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "logvar", "lvlb_weights",
    };

    /// <summary>LatentDiffusion's schedule buffers, <c>model_ema.*</c>, <c>first_stage_model.loss.*</c>, <c>denoiser.*</c>.</summary>
    public static bool IsTrainingState(string key) =>
        TrainingBuffers.Contains(key) || key.StartsWith("model_ema.", StringComparison.Ordinal)
        || key.StartsWith(VaeKeyRules.Prefix + "loss.", StringComparison.Ordinal) || key.StartsWith("denoiser.", StringComparison.Ordinal);
}
