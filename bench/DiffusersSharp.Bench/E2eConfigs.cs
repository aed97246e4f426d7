using System.Text.Json.Nodes;

namespace DiffusersSharp.Bench;

/// <summary>
/// The published configs the end-to-end benchmark builds its random-weight pipelines from (issue 14, item 5), and the
/// scenarios it runs. Full size: SD 1.5 (runwayml/stable-diffusion-v1-5), SD-Turbo (stabilityai/sd-turbo: the SD 2.1
/// UNet with linear projections and 1024-wide cross-attention, the OpenCLIP ViT-H text tower: 23 layers, 1024 wide,
/// gelu), LCM (SimianLuo/LCM_Dreamshaper_v7: the SD 1.5 UNet with <c>time_cond_proj_dim</c> 256) and TAESD
/// (madebyollin/taesd: <see cref="Models.AutoencoderTinyConfig"/>'s defaults; madebyollin/taesdxl is the same network) and
/// SDXL-Turbo (stabilityai/sdxl-turbo: the SDXL base UNet at sample_size 64, CLIP ViT-L + OpenCLIP ViT-bigG text
/// encoders, the SDXL VAE). <c>--quick</c>: the tiny-sd / tiny-sdxl / tiny-taesd test configs of tests/golden, with the
/// same scenario differences, at 64².
/// </summary>
public static class E2eConfigs
{
    /// <summary>One end-to-end run: the models it builds, its scheduler, steps, guidance and decoder.</summary>
    /// <param name="Name">Short name (a, b, c, d in the issue).</param>
    /// <param name="Title">What it stands for.</param>
    /// <param name="Steps">Denoising steps.</param>
    /// <param name="Guidance">Guidance scale (≤ 1: no classifier-free-guidance batch; LCM: the embedded w).</param>
    /// <param name="Taesd">Decode with the tiny VAE instead of the AutoencoderKL.</param>
    /// <param name="Family">sd15, sd21 (SD-Turbo), lcm or sdxl (SDXL-Turbo): which UNet / text encoder configs.</param>
    /// <param name="SchedulerJson">The scheduler_config.json.</param>
    public sealed record Scenario(string Name, string Title, int Steps, double Guidance, bool Taesd, string Family, string SchedulerJson);

    private const string Sd15Pndm = """
    { "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
      "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1, "clip_sample": false }
    """;

    // SD-Turbo as the issue runs it: Euler ancestral, trailing spacing (sd-turbo's own config: Euler, trailing).
    private const string TurboEulerA = """
    { "_class_name": "EulerAncestralDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
      "num_train_timesteps": 1000, "prediction_type": "epsilon", "steps_offset": 1, "timestep_spacing": "trailing" }
    """;

    // SimianLuo/LCM_Dreamshaper_v7 scheduler/scheduler_config.json
    private const string Lcm = """
    { "_class_name": "LCMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
      "clip_sample": false, "num_train_timesteps": 1000, "original_inference_steps": 50, "prediction_type": "epsilon",
      "set_alpha_to_one": true, "steps_offset": 1, "timestep_spacing": "leading" }
    """;

    /// <summary>The (a)-(d), and (e): (d) with the full SDXL VAE as decoder.</summary>
    public static readonly IReadOnlyList<Scenario> Scenarios =
    [
        new("a", "SD 1.5, 20 steps PNDM, CFG 7.5, AutoencoderKL", 20, 7.5, false, "sd15", Sd15Pndm),
        new("b", "SD-Turbo class, 1 step Euler-a trailing, guidance 0, TAESD", 1, 0.0, true, "sd21", TurboEulerA),
        new("c", "LCM, 4 steps, w = 8 (embedded), TAESD", 4, 8.0, true, "lcm", Lcm),
        new("d", "SDXL-Turbo class, 1 step Euler-a trailing, guidance 0, TAESD(XL)", 1, 0.0, true, "sdxl", TurboEulerA),
        new("e", "SDXL-Turbo class, 1 step Euler-a trailing, guidance 0, SDXL AutoencoderKL", 1, 0.0, false, "sdxl", TurboEulerA),
    ];

    // runwayml/stable-diffusion-v1-5 text_encoder/config.json (the keys that shape the model)
    private const string Sd15Text = """
    { "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
      "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "quick_gelu", "projection_dim": 768,
      "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1 }
    """;

    // stabilityai/sd-turbo text_encoder/config.json (OpenCLIP ViT-H/14 text tower, penultimate layer kept)
    private const string Sd21Text = """
    { "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 23, "num_attention_heads": 16,
      "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "gelu", "projection_dim": 512,
      "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1 }
    """;

    // stabilityai/sd-turbo unet/config.json (the SD 2.1 architecture at sample_size 64)
    private const string Sd21UNet = """
    {
      "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": [5, 10, 20, 20],
      "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false, "cross_attention_dim": 1024,
      "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
      "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
      "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
      "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
      "use_linear_projection": true
    }
    """;

    // stabilityai/sdxl-turbo text_encoder_2/config.json (OpenCLIP ViT-bigG/14 text tower with its projection)
    private const string SdxlText2 = """
    { "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 20,
      "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "gelu", "projection_dim": 1280,
      "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1 }
    """;

    /// <summary>madebyollin/taesd config.json (= AutoencoderTiny's defaults).</summary>
    private const string Taesd = """{ "_class_name": "AutoencoderTiny" }""";

    /// <summary>The component configs of <paramref name="s"/>: (text_encoder, unet, vae, taesd) config.json texts.</summary>
    public static (string Text, string Unet, string Vae, string Taesd) Components(Scenario s, bool quick, string repoRoot)
    {
        if (s.Family == "sdxl") return SdxlComponents(quick, repoRoot);
        if (quick)
        {
            string tiny = Path.Combine(repoRoot, "tests", "golden", "tiny-sd");
            var unet = JsonNode.Parse(File.ReadAllText(Path.Combine(tiny, "unet", "config.json")))!.AsObject();
            if (s.Family == "lcm") unet["time_cond_proj_dim"] = 256;
            if (s.Family == "sd21") unet["use_linear_projection"] = true;
            return (File.ReadAllText(Path.Combine(tiny, "text_encoder", "config.json")), unet.ToJsonString(),
                File.ReadAllText(Path.Combine(tiny, "vae", "config.json")),
                File.ReadAllText(Path.Combine(repoRoot, "tests", "golden", "tiny-taesd", "config.json")));
        }
        string unetJson = s.Family switch
        {
            "sd21" => Sd21UNet,
            "lcm" => WithKey(SdBench.Sd15UNetConfig, "time_cond_proj_dim", 256),
            _ => SdBench.Sd15UNetConfig,
        };
        return (s.Family == "sd21" ? Sd21Text : Sd15Text, unetJson, SdBench.Sd15VaeConfig, Taesd);
    }

    /// <summary>The second text encoder's config.json of an SDXL scenario (OpenCLIP bigG, or tiny-sdxl's with --quick).</summary>
    public static string Text2(bool quick, string repoRoot) => quick
        ? File.ReadAllText(Path.Combine(repoRoot, "tests", "golden", "tiny-sdxl", "text_encoder_2", "config.json"))
        : SdxlText2;

    // sdxl-turbo: the SDXL base UNet at 512² (sample_size 64); the SDXL VAE (the SD VAE with scaling factor 0.13025,
    // force_upcast); text_encoder = CLIP ViT-L as in SD 1.5
    private static (string Text, string Unet, string Vae, string Taesd) SdxlComponents(bool quick, string repoRoot)
    {
        string taesd = quick ? File.ReadAllText(Path.Combine(repoRoot, "tests", "golden", "tiny-taesd", "config.json")) : Taesd;
        if (quick)
        {
            string tiny = Path.Combine(repoRoot, "tests", "golden", "tiny-sdxl");
            return (File.ReadAllText(Path.Combine(tiny, "text_encoder", "config.json")), File.ReadAllText(Path.Combine(tiny, "unet", "config.json")),
                File.ReadAllText(Path.Combine(tiny, "vae", "config.json")), taesd);
        }
        var unet = JsonNode.Parse(SdxlUNetBench.SdxlBaseConfig)!.AsObject();
        unet["sample_size"] = 64;
        var vae = JsonNode.Parse(SdBench.Sd15VaeConfig)!.AsObject();
        vae["scaling_factor"] = 0.13025;
        vae["force_upcast"] = true;
        return (Sd15Text, unet.ToJsonString(), vae.ToJsonString(), taesd);
    }

    /// <summary>The tokenizer folder: the real CLIP vocabulary (full size) or tiny-sd's (quick).</summary>
    public static string TokenizerFolder(bool quick, string repoRoot) => quick
        ? Path.Combine(repoRoot, "tests", "golden", "tiny-sd", "tokenizer")
        : Path.Combine(repoRoot, "tests", "golden", "clip-tokenizer");

    /// <summary>The image side: 512 (full size) or 64 (quick).</summary>
    public static int ImageSize(bool quick) => quick ? 64 : 512;

    private static string WithKey(string json, string key, int value)
    {
        var node = JsonNode.Parse(json)!.AsObject();
        node[key] = value;
        return node.ToJsonString();
    }

    /// <summary>The repository root (the folder holding DiffusersSharp.sln), searched upwards from the working directory.</summary>
    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "DiffusersSharp.sln"))) return dir.FullName;
        throw new InvalidOperationException("run the benchmark from inside the repository (DiffusersSharp.sln not found above the working directory)");
    }
}
