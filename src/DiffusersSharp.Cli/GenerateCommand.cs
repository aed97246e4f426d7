using System.CommandLine;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Pipelines.SingleFile;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers generate --model &lt;folder|hub id|single file&gt; [--steps N] [--seed S] [--batch B] [--output out.png|out.npy]
/// [--scheduler NAME] [--scheduler-config key=value]... [--eta E] [--dtype D] [--variant V] [--revision R] [--cache-dir D]</c>.
/// <c>--revision</c> is the model's (the other Hub ids are read at their own <c>org/name@rev</c>, else main); <c>--cache-dir</c> is the Hub cache of every Hub id of the run (the model, its
/// ControlNets and refiner, a single file's <c>--config</c>, <c>--vae</c>, <c>--preview-vae</c>, <c>--lora</c>, <c>--embedding</c>), as <c>download</c>'s
/// and <c>cache</c>'s.
/// </summary>
public static class GenerateCommand
{
    private static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg", ".webp"];

    /// <summary>Builds the command (options, arguments and handler) around <paramref name="ctx"/>.</summary>
    public static Command Create(CliContext ctx)
    {
        var model = new Option<string?>("--model", "-m")
        {
            Description = $"Pipeline folder, Hub id or single-file checkpoint (.safetensors/.ckpt) (default: the bundled {DefaultModel.Name}, a 32x32 cartoon-cat DDPM trained by 'diffusers train unconditional')",
        };
        var steps = new Option<int?>("--steps", "-n") { Description = "Denoising steps (default: the pipeline's, DDPM 1000, DDIM 50)" };
        var seed = new Option<long?>("--seed", "-s") { Description = "Seed of the CPU generator (torch.manual_seed); random when absent" };
        var batch = new Option<int>("--batch", "-b") { Description = "Images to generate", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--output", "-o")
        {
            Description = "Output file: .png/.jpg/.webp (a grid for a batch) or .npy (float32 NHWC in [0,1], diffusers' output_type=\"np\")",
            DefaultValueFactory = _ => "out.png",
        };
        var scheduler = new Option<string?>("--scheduler")
        {
            Description = "Scheduler class or alias: " + string.Join(", ", SchedulerSelection.Aliases.Keys),
        };
        var schedulerConfig = new Option<string[]>("--scheduler-config")
        {
            Description = "key=value applied to the scheduler config (repeatable; value parsed as JSON, else a string)",
            DefaultValueFactory = _ => [],
        };
        var dtype = new Option<string>("--dtype")
        {
            Description = "Model dtype: fp32 (default), bf16, fp16, or auto (bf16 where the CPU has native bf16: AVX512-BF16 or AMX; else fp32)",
            DefaultValueFactory = _ => "fp32",
        };
        dtype.AcceptOnlyFromAmong("fp32", "float32", "bf16", "bfloat16", "fp16", "float16", "auto");
        var variant = new Option<string?>("--variant") { Description = "Weights variant to load, e.g. fp16 (*.fp16.safetensors)" };
        var revision = new Option<string?>("--revision")
        {
            Description = "Branch, tag or commit of the model's Hub id (default main; --controlnet/--refiner/--vae/--preview-vae/--lora/--embedding ids take org/name@rev instead)",
        };
        var cacheDir = CacheCommand.CacheDirOption();
        var config = new Option<string?>("--config") { Description = "Single-file checkpoint: " + SingleFileConfig.Description };
        var upscale = new Option<int>("--upscale")
        {
            Description = "Enlarge the saved image N times (nearest neighbour; for small models' images)",
            DefaultValueFactory = _ => 1,
        };
        var eta = new Option<double?>("--eta") { Description = "DDIM eta (0 = deterministic DDIM, 1 = DDPM-like noise); DDIM only" };
        var sd = StableDiffusionOptions.Create();
        var sdxl = StableDiffusionXLOptions.Create();
        var upscaler = StableDiffusionUpscaleOptions.Create();
        var dit = DiTOptions.Create();
        var components = ComponentOptions.Create();
        var controlnet = ControlNetOptions.Create();
        var adapter = AdapterOptions.Create();
        var ipAdapter = IPAdapterOptions.Create();
        var lora = LoraOptions.Create();
        var previews = PreviewOptions.Create();
        var pix2pix = InstructPix2PixOptions.Create();
        var panorama = PanoramaOptions.Create();

        var cmd = new Command("generate",
            "Generate images: unconditional pipelines (DDPMPipeline, DDIMPipeline), Stable Diffusion (txt2img, --init-image for img2img, --mask for inpainting, --controlnet with --control-image, --image for the x4 upscaler) or DiT (--class-label)")
        {
            model, steps, seed, batch, output, scheduler, schedulerConfig, eta, dtype, variant, revision, cacheDir, config, upscale,
        };
        sd.AddTo(cmd);
        sdxl.AddTo(cmd);
        upscaler.AddTo(cmd);
        dit.AddTo(cmd);
        components.AddTo(cmd);
        controlnet.AddTo(cmd);
        adapter.AddTo(cmd);
        ipAdapter.AddTo(cmd);
        lora.AddTo(cmd);
        previews.AddTo(cmd);
        pix2pix.AddTo(cmd);
        panorama.AddTo(cmd);
        cmd.SetAction(pr => Execute(ctx, new Request(
            pr.GetValue(model) ?? DefaultModel.Path, pr.GetValue(steps), pr.GetValue(seed), pr.GetValue(batch), pr.GetValue(output)!,
            pr.GetValue(scheduler), pr.GetValue(schedulerConfig) ?? [], pr.GetValue(eta), pr.GetValue(dtype) ?? "fp32")
        { StableDiffusion = sd.Read(pr), StableDiffusionXL = sdxl.Read(pr), StableDiffusionUpscale = upscaler.Read(pr), DiT = dit.Read(pr), Upscale = pr.GetValue(upscale), Variant = pr.GetValue(variant), Revision = pr.GetValue(revision), CacheDir = pr.GetValue(cacheDir), SingleFileConfig = pr.GetValue(config), Components = components.Read(pr), ControlNet = controlnet.Read(pr), Lora = lora.Read(pr), Preview = previews.Read(pr), InstructPix2Pix = pix2pix.Read(pr), Panorama = panorama.Read(pr), Adapter = adapter.Read(pr), IPAdapter = ipAdapter.Read(pr) }));
        return cmd;
    }

    /// <summary>The parsed options of one <c>generate</c> call.</summary>
    public sealed record Request(string Model, int? Steps, long? Seed, int Batch, string Output, string? Scheduler,
        string[] SchedulerConfig, double? Eta, string Dtype = "fp32")
    {
        /// <summary>The Stable Diffusion options (prompt, guidance, size, init image, mask, …).</summary>
        public StableDiffusionOptions.Values StableDiffusion { get; init; } = new();

        /// <summary>The Stable Diffusion XL options (--prompt-2, --refiner, micro-conditioning sizes, …).</summary>
        public StableDiffusionXLOptions.Values StableDiffusionXL { get; init; } = new();

        /// <summary>The Stable Diffusion x4 upscaler options (--image, --noise-level).</summary>
        public StableDiffusionUpscaleOptions.Values StableDiffusionUpscale { get; init; } = new();

        /// <summary>The DiT options (--class-label).</summary>
        public DiTOptions.Values DiT { get; init; } = new();

        /// <summary>Nearest-neighbour enlargement of the saved image (1 = as generated).</summary>
        public int Upscale { get; init; } = 1;

        /// <summary>The weights variant (<see cref="LoadOptions.Variant"/>); null = the plain weights.</summary>
        public string? Variant { get; init; }

        /// <summary>The revision of the model's Hub id (<see cref="LoadOptions.Revision"/>); null = main.</summary>
        public string? Revision { get; init; }

        /// <summary>The Hub cache of every Hub id of the run (<see cref="LoadOptions.CacheDir"/>); null = the environment's.</summary>
        public string? CacheDir { get; init; }

        /// <summary>A single-file checkpoint's --config (<see cref="Cli.SingleFileConfig"/>); null = inferred from the file.</summary>
        public string? SingleFileConfig { get; init; }

        /// <summary>The component options (--vae, --embedding).</summary>
        public ComponentOptions.Values Components { get; init; } = new();

        /// <summary>The ControlNet options (--controlnet, --control-image, --control-scale, …).</summary>
        public ControlNetOptions.Values ControlNet { get; init; } = new();
        /// <summary>The T2I-Adapter options (--adapter, --adapter-image, --adapter-scale).</summary>
        public AdapterOptions.Values Adapter { get; init; } = new();
        /// <summary>The IP-Adapter options (--ip-adapter, --ip-adapter-image, --ip-adapter-scale).</summary>
        public IPAdapterOptions.Values IPAdapter { get; init; } = new();
        /// <summary>The LoRA options (--lora, --fuse-lora, --lora-ignore-unknown).</summary>
        public LoraOptions.Values Lora { get; init; } = new();
        /// <summary>The preview options (--preview-every, --preview-vae).</summary>
        public PreviewOptions.Values Preview { get; init; } = new();
        /// <summary>The InstructPix2Pix options.</summary>
        public InstructPix2PixOptions.Values InstructPix2Pix { get; init; } = new();
        /// <summary>The panorama options (--panorama, --view-batch-size, --circular-padding).</summary>
        public PanoramaOptions.Values Panorama { get; init; } = new();
    }

    /// <summary>
    /// Loads the model <paramref name="r"/> names, generates and writes the output; returns the exit code.
    /// </summary>
    public static int Execute(CliContext ctx, Request r)
    {
        // Everything that can be checked without the model is checked first: nothing is loaded or written
        // for a bad command line.
        string ext = Path.GetExtension(r.Output).ToLowerInvariant();
        bool npy = ext == ".npy";
        if (!npy && !ImageExtensions.Contains(ext))
            throw new UserException($"--output '{r.Output}': unknown extension '{ext}'; use .png, .jpg, .jpeg, .webp or .npy");
        if (r.Batch <= 0) throw new UserException($"--batch must be at least 1, got {r.Batch}");
        if (r.Steps is <= 0) throw new UserException($"--steps must be at least 1, got {r.Steps}");
        if (r.Steps is not null && r.StableDiffusion.Timesteps is not null)
            throw new UserException("--timesteps and --steps cannot be combined: the custom timesteps set the steps (one per timestep), as diffusers' timesteps replace num_inference_steps");
        if (r.Upscale is < 1 or > 64) throw new UserException($"--upscale must be between 1 and 64, got {r.Upscale}");
        if (r.Upscale != 1 && npy) throw new UserException("--upscale applies to image outputs, not .npy");
        if (r.StableDiffusion.PaddingMaskCrop is not null && npy)
            throw new UserException("--padding-mask-crop gives 8-bit images (diffusers' padding_mask_crop takes output_type \"pil\" only): write a .png, .jpg or .webp, not .npy");
        if (r.Eta is { } e0 && !(e0 >= 0 && e0 <= 1)) throw new UserException($"--eta must be between 0 and 1, got {e0}");
        r.StableDiffusion.CheckWithoutModel();
        r.StableDiffusionXL.CheckWithoutModel(r.StableDiffusion);
        r.StableDiffusionUpscale.CheckWithoutModel();
        r.DiT.CheckWithoutModel();
        r.Components.CheckWithoutModel();
        r.ControlNet.CheckWithoutModel();
        r.Adapter.CheckWithoutModel();
        r.IPAdapter.CheckWithoutModel();
        r.Lora.CheckWithoutModel();
        r.Preview.CheckWithoutModel();
        r.InstructPix2Pix.CheckWithoutModel();
        r.Panorama.CheckWithoutModel();
        try { AtomicFile.EnsureWritable(r.Output); }
        catch (DiffusersException e) { throw new UserException($"--output: {e.Message}"); }

        var dtype = ParseDtype(r.Dtype);
        if (r.Dtype == "auto")
            ctx.Out.WriteLine($"--dtype auto: {(Runtime.CpuFeatures.NativeBFloat16Flag(Runtime.CpuFeatures.CurrentFlags) is { } flag ? $"bf16 (the CPU has {flag})" : "fp32 (no native bf16 on this CPU)")}");
        string? cacheDir = r.CacheDir is null ? null : CacheCommand.FullCacheDir(r.CacheDir);
        // every load's warnings (a checkpoint's tensors the model does not have, …) on the CLI's error writer, not Console.Error
        var options = new LoadOptions
        {
            Dtype = dtype,
            Variant = r.Variant,
            Revision = r.Revision,
            CacheDir = cacheDir,
            Log = ctx.Warn,
        };
        bool singleFile = OriginalCheckpoint.IsSingleFile(r.Model);   // an A1111/CivitAI/CompVis checkpoint: FromSingleFile
        if (r.SingleFileConfig is not null && !singleFile)
            throw new UserException($"--config applies to a single-file checkpoint (.safetensors/.ckpt); {r.Model} is a pipeline folder or Hub id, whose own configs are used");
        string folder = singleFile ? r.Model : PipelinePaths.Resolve(r.Model, options);
        string className = singleFile ? SingleFileConverter.PipelineClassOf(r.Model) : DiffusionPipeline.ReadClassName(PipelinePaths.ModelIndex(folder));
        if (singleFile && !GenerateRoutes.ReadSingleFile(className))
            throw new UserException($"{r.Model} is a single file for {className}, which 'generate' does not run yet (convert it with 'diffusers convert')");
        // Always the "np" output: it is checked for NaN/Inf before anything is written (OutputWriter).
        var outputType = OutputType.Np;
        // the pipelines are GenerateRoutes': each refuses its own options on another class, then the first that runs the request does
        var route = GenerateRoutes.For(r, className);
        using var result = route.Execute(new GenerateRun(ctx, r, folder, className, options, outputType));
        OutputWriter.Write(r.Output, result.Array!, npy, r.Upscale);
        ctx.Out.WriteLine($"wrote {r.Output}");
        return CliApp.Ok;
    }

    /// <summary>
    /// The dtype a <c>--dtype</c> value names; <c>auto</c> is <see cref="Runtime.CpuFeatures.AutoDtype"/> (bf16 where the
    /// CPU has native bf16, else fp32).
    /// </summary>
    public static TorchSharp.torch.ScalarType ParseDtype(string value) => value switch
    {
        "fp32" or "float32" => TorchSharp.torch.ScalarType.Float32,
        "bf16" or "bfloat16" => TorchSharp.torch.ScalarType.BFloat16,
        "fp16" or "float16" => TorchSharp.torch.ScalarType.Float16,
        "auto" => Runtime.CpuFeatures.AutoDtype(),
        _ => throw new UserException($"--dtype '{value}': use fp32, bf16, fp16 or auto"),
    };
}
