#pragma warning disable MEAI001 // the image API of Microsoft.Extensions.AI is experimental
using System.Globalization;
using DiffusersSharp.Extensions.AI;
using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using DiffusersSharp.Training;
using Microsoft.Extensions.AI;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// memory-pipelines: every generation path on the tiny golden models (tests/golden) for ≥ 1000 UNet steps, each path in a
/// process of its own, with one torch thread by default (memory does not depend on it; on a shared 2-core machine a step
/// took 20-40 ms so, 230 ms with two). Samples (after a full collection): this thread's live tensors (TorchSharp's
/// created − disposed on this thread: a tensor left to the finalizer stays counted), all threads' tensors
/// (<c>Tensor.TotalCount</c>: exact over steps, but it drifts up by one per <c>Parameter</c> ever made, so only its
/// change during a run means anything), RSS, the managed heap and glibc's heap in use.
/// A path runs one long call (the largest step count ≤ --steps its scheduler takes; half for Heun and KDPM2, which call
/// the UNet twice a step) sampled at step 1, every 100 steps and its last, then two calls of 25 steps, each followed by
/// a sample. LCM (at most 50 steps a call), the generation service and the <c>IImageGenerator</c> run repeated calls
/// instead, sampled at each call's last step and after it (the mixed service path compares the ends of its cycles of
/// request kinds); the trainer runs --steps steps. "Last": the last multiple of 100 in a long call (the same stage of a
/// two-stage scheduler as step 100), the last call's end when calls repeat. A leak: more live tensors at the last sample
/// than at step 100, or after the last call than after the first compared, or RSS more than 5% above step 100's.
/// </summary>
public static class MemoryPipelinesBench
{
    /// <summary>The paths, in the order the parent runs them.</summary>
    public static readonly string[] Paths =
    [
        "ddpm",
        .. SchedulerAliases.Aliases.Keys.Select(a => "sd-" + a),
        "sd-default", "sd-no-cfg", "sd-img2img", "sd-inpaint", "sd-inpaint-4ch", "sd-inpaint-crop", "sd-upscale",
        "sd-instruct-pix2pix", "sd-adapter", "sd-ip-adapter", "sd-panorama", "sd-latent-upscale",
        "sd-lora", "sd-lora-fused", "sd-textual-inversion", "sd-taesd", "sd-taesd-previews",
        "controlnet", "controlnet-multi", "controlnet-img2img", "controlnet-inpaint",
        "sdxl", "sdxl-dpm++2m", "sdxl-no-cfg", "sdxl-img2img", "sdxl-inpaint", "sdxl-refiner", "sdxl-lora", "sdxl-controlnet", "sdxl-ip-adapter",
        "ldm", "ldm-super-resolution",
        "service", "service-mixed", "service-sdxl", "image-generator",
        "train",
    ];

    /// <summary>The image size in pixels (--size; the tiny VAEs halve it: 16² latents at the default 32).</summary>
    private static int Size = 32;

    /// <summary>Runs every path (or <paramref name="only"/>) in a child process each and prints the table.</summary>
    public static int Run(int steps, int size, int threads, IReadOnlyList<string>? only)
    {
        var paths = only ?? Paths;
        foreach (var p in paths)
            if (!Paths.Contains(p)) { Console.WriteLine($"unknown path '{p}'; paths: {string.Join(", ", Paths)}"); return 1; }
        var results = new List<string>();
        int failed = 0;
        foreach (var path in paths)
        {
            Console.WriteLine($"== {path}");
            var (code, lines) = ChildProcesses.RunSelf(["memory-pipelines-run", "--path", path, "--steps", steps.ToString(CultureInfo.InvariantCulture),
                "--size", size.ToString(CultureInfo.InvariantCulture), "--threads", threads.ToString(CultureInfo.InvariantCulture)], echo: true);
            var result = lines.LastOrDefault(l => l.StartsWith("| ", StringComparison.Ordinal));
            if (code != 0 || result is null) { failed++; results.Add($"| {path} | failed (exit code {code}) |"); }
            else results.Add(result);
        }
        Console.WriteLine();
        Console.WriteLine(MemoryPipelinesSoak.TableHeader);
        foreach (var r in results) Console.WriteLine(r);
        return failed == 0 ? 0 : 1;
    }

    /// <summary>One path in this process; prints its samples and its table row.</summary>
    public static int RunOne(string path, int steps, int size, int threads)
    {
        Size = size;
        torch.set_num_threads(threads);
        var soak = new MemoryPipelinesSoak(path);
        soak.Note($"before: live {MemoryPipelinesSoak.ThreadLive}, TotalCount {torch.Tensor.TotalCount}");
        Dispatch(path, steps, soak);
        soak.Summary();
        return 0;
    }

    private static void Dispatch(string path, int steps, MemoryPipelinesSoak soak)
    {
        const string Prompt = "a photo of a cat";
        if (path.StartsWith("sd-", StringComparison.Ordinal) && SchedulerAliases.Aliases.ContainsKey(path[3..]))
        {
            using var pipe = StableDiffusionPipeline.FromPretrained(G("tiny-sd"));
            using var loaded = pipe.Scheduler;   // a replaced scheduler is the caller's
            pipe.Scheduler = SchedulerAliases.Build(path[3..], (DiffusersConfig)loaded.Config);
            LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, "", 7.5, height: Size, width: Size, numInferenceSteps: n, seed: 0, progress: soak));
            return;
        }
        switch (path)
        {
            case "ddpm":
            {
                using var pipe = DDPMPipeline.FromPretrained(G("tiny-ddpm"));
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(numInferenceSteps: n, seed: 0, progress: soak));
                return;
            }
            case "sd-default" or "sd-no-cfg":
            {
                using var pipe = StableDiffusionPipeline.FromPretrained(G("tiny-sd"));
                double guidance = path == "sd-no-cfg" ? 1.0 : 7.5;
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, "", guidance, height: Size, width: Size, numInferenceSteps: n, seed: 0, progress: soak));
                return;
            }
            case "sd-img2img":
            {
                using var pipe = StableDiffusionImg2ImgPipeline.FromPretrained(G("tiny-sd"));
                var init = Img("img2img-init.png");
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, init, 0.9, "", 7.5, numInferenceSteps: n, seed: 0, progress: soak));
                return;
            }
            case "sd-upscale":
            {
                using var pipe = StableDiffusionUpscalePipeline.FromPretrained(G("tiny-sd-upscale"));
                var lowRes = Image.Load(G("upscale/low-res-16x16.png"));   // 16x16: a 64x64 output
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, lowRes, n, negativePrompt: "", seed: 0, progress: soak));
                return;
            }
            case "sd-instruct-pix2pix":
            {
                // three-way guidance (text, image, none): a batch of three in every UNet call
                using var pipe = StableDiffusionInstructPix2PixPipeline.FromPretrained(G("tiny-sd-instruct-pix2pix"));
                var init = Img("img2img-init.png");
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, init, n, 7.5, 1.5, "", seed: 0, progress: soak));
                return;
            }
            case "sd-adapter":
            {
                // tiny-sd with the SD-order UNet the tiny full adapter fits (as T2IAdapterPipelineTests assemble it)
                string sd = G("tiny-sd");
                using var pipe = new StableDiffusionAdapterPipeline(AutoencoderKL.FromPretrained(sd, "vae"), CLIPTextModel.FromPretrained(sd, "text_encoder"),
                    CLIPTokenizer.FromPretrained(sd, "tokenizer"), UNet2DConditionModel.FromPretrained(G("tiny-t2i-adapter/sd-unet")),
                    T2IAdapter.FromPretrained(G("tiny-t2i-adapter/sd-full")), SchedulerFactory.FromPretrained(sd, "scheduler"));
                var edges = Img("controlnet-edges.png");
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, [edges], Size, Size, n, 7.5, "", seed: 0, progress: soak));
                return;
            }
            case "sd-ip-adapter":
            {
                // the plus adapter: the image encoder's hidden states (and a zeros image's) and the Resampler every call
                using var pipe = StableDiffusionPipeline.FromPretrained(G("tiny-sd"));
                pipe.LoadIPAdapter(G("ip-adapter"), "", "ip-adapter-plus.safetensors");
                pipe.SetIPAdapterScale(0.6);
                var face = Img("ip-adapter/ip-image.png");
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, "", 7.5, height: Size, width: Size, numInferenceSteps: n, seed: 0, progress: soak,
                    ipAdapterImage: face));
                return;
            }
            case "sd-panorama":
            {
                // 16x640 with the scale-8 VAE of tests/golden/panorama: 10 circular windows, two per UNet call, a scheduler
                // copy per window batch (PNDM: multistep state)
                string sd = G("tiny-sd");
                using var pipe = new StableDiffusionPanoramaPipeline(AutoencoderKL.FromPretrained(G("panorama/tiny-vae8")),
                    CLIPTextModel.FromPretrained(sd, "text_encoder"), CLIPTokenizer.FromPretrained(sd, "tokenizer"),
                    UNet2DConditionModel.FromPretrained(sd, "unet"), SchedulerFactory.FromPretrained(sd, "scheduler"));
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, 16, 640, n, 7.5, viewBatchSize: 2, negativePrompt: "",
                    seed: 0, progress: soak, circularPadding: true));
                return;
            }
            case "sd-latent-upscale":
            {
                // the K-block UNet of tests/golden/latent-upscale on tiny-sd's text encoder and VAE, Euler on tiny-sd's schedule;
                // 8x8 latents in, 16x16 out, guidance (a batch of two) with the pooled-embedding timestep_cond
                string sd = G("tiny-sd");
                using var pipe = new StableDiffusionLatentUpscalePipeline(AutoencoderKL.FromPretrained(sd, "vae"),
                    CLIPTextModel.FromPretrained(sd, "text_encoder"), CLIPTokenizer.FromPretrained(sd, "tokenizer"),
                    UNet2DConditionModel.FromPretrained(G("latent-upscale/unet")),
                    SchedulerFactory.FromConfig(EulerDiscreteScheduler.Name, SchedulerFactory.ReadConfigFile(sd, "scheduler")));
                torch.manual_seed(0);
                using var low = torch.randn(1, 4, 8, 8);
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, low, n, 7.5, "", seed: 0, progress: soak));
                return;
            }
            case "ldm":
            {
                using var pipe = LDMPipeline.FromPretrained(G("ldm/tiny-ldm"));
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(numInferenceSteps: n, eta: 1, seed: 0, progress: soak));
                return;
            }
            case "ldm-super-resolution":
            {
                using var pipe = LDMSuperResolutionPipeline.FromPretrained(G("ldm/tiny-ldm-sr"));
                var lowRes = Img("ldm/lowres.png");
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(lowRes, n, eta: 1, seed: 0, progress: soak));
                return;
            }
            case "sd-inpaint" or "sd-inpaint-4ch" or "sd-inpaint-crop":
            {
                using var folder = path == "sd-inpaint" ? InpaintFolder() : null;
                using var pipe = StableDiffusionInpaintPipeline.FromPretrained(folder?.Path ?? G("tiny-sd"));
                var init = Img("img2img-init.png");
                var mask = Img("inpaint-mask.png");
                int? crop = path == "sd-inpaint-crop" ? 4 : null;
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, init, mask, 1.0, crop is null ? Size : null, crop is null ? Size : null, "", 7.5,
                    numInferenceSteps: n, seed: 0, progress: soak, paddingMaskCrop: crop));
                return;
            }
            case "sd-lora" or "sd-lora-fused":
            {
                using var pipe = StableDiffusionPipeline.FromPretrained(G("tiny-sd"));
                pipe.LoadLoraWeights(G("tiny-sd-lora/diffusers/pytorch_lora_weights.safetensors"), adapterName: "a");
                pipe.LoadLoraWeights(G("tiny-sd-lora/kohya.safetensors"), adapterName: "b");
                pipe.SetAdapters(["a", "b"], [0.7, 0.5]);
                if (path == "sd-lora-fused") pipe.FuseLora(0.8);
                var kwargs = path == "sd-lora" ? new CrossAttentionOptions { Scale = 0.9 } : null;
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, "", 7.5, height: Size, width: Size, numInferenceSteps: n, seed: 0, progress: soak,
                    crossAttentionKwargs: kwargs));
                return;
            }
            case "sd-textual-inversion":
            {
                using var pipe = StableDiffusionPipeline.FromPretrained(G("tiny-sd"));
                pipe.LoadTextualInversion(G("tiny-sd-textual-inversion/learned_embeds.safetensors"), token: "<cat-toy>");
                pipe.LoadTextualInversion(G("tiny-sd-textual-inversion/style3.pt"), token: "<style3>");
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate("a <cat-toy> in <style3>", "", 7.5, height: Size, width: Size, numInferenceSteps: n, seed: 0,
                    progress: soak));
                return;
            }
            case "sd-taesd" or "sd-taesd-previews":
            {
                // sd-taesd: the tiny VAE decodes; sd-taesd-previews: a TAESD preview after every step (the CLI's --preview-every 1)
                using var pipe = StableDiffusionPipeline.FromPretrained(G("tiny-sd"));
                using var taesd = AutoencoderTiny.FromPretrained(G("tiny-taesd"));
                StepEndCallback? previews = null;
                long seen = 0;
                if (path == "sd-taesd")
                {
                    using (pipe.Vae) pipe.Vae = AutoencoderTiny.FromPretrained(G("tiny-taesd"));   // the replaced VAE is ours to free
                }
                else previews = new TaesdPreview(taesd, maxSize: 32).Every(1, (_, _, image) => seen += image.Pixels.Length);
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, "", 7.5, height: Size, width: Size, numInferenceSteps: n, seed: 0, progress: soak,
                    callbackOnStepEnd: previews));
                if (previews is not null) soak.Note($"previews: {seen} pixel bytes");
                return;
            }
            case "controlnet" or "controlnet-multi":
            {
                TorchSharp.torch.nn.Module nets = path == "controlnet" ? ControlNetModel.FromPretrained(G("tiny-sd-controlnet"))
                    : new MultiControlNetModel([ControlNetModel.FromPretrained(G("tiny-sd-controlnet")), ControlNetModel.FromPretrained(G("tiny-sd-controlnet"))]);
                using var pipe = StableDiffusionControlNetPipeline.FromPretrained(G("tiny-sd"), nets);
                var edges = Img("controlnet-edges.png");
                var scribble = Img("controlnet-scribble.png");
                ImageInput[] images = path == "controlnet" ? [edges] : [edges, scribble];
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, images, Size, Size, n, 7.5, "", seed: 0, progress: soak,
                    controlGuidanceEnd: path == "controlnet" ? [0.8] : null));
                return;
            }
            case "controlnet-img2img":
            {
                using var pipe = StableDiffusionControlNetImg2ImgPipeline.FromPretrained(G("tiny-sd"), ControlNetModel.FromPretrained(G("tiny-sd-controlnet")));
                var init = Img("img2img-init.png");
                var scribble = Img("controlnet-scribble.png");
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, init, [scribble], strength: 0.9, numInferenceSteps: n, seed: 0, progress: soak));
                return;
            }
            case "controlnet-inpaint":
            {
                using var pipe = StableDiffusionControlNetInpaintPipeline.FromPretrained(G("tiny-sd"), ControlNetModel.FromPretrained(G("tiny-sd-controlnet")));
                var init = Img("img2img-init.png");
                var mask = Img("inpaint-mask.png");
                var edges = Img("controlnet-edges.png");
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, init, mask, [edges], strength: 0.9, numInferenceSteps: n, seed: 0, progress: soak));
                return;
            }
            case "sdxl" or "sdxl-dpm++2m" or "sdxl-no-cfg" or "sdxl-lora" or "sdxl-ip-adapter":
            {
                using var pipe = StableDiffusionXLPipeline.FromPretrained(G("tiny-sdxl"));
                using var loaded = pipe.Scheduler;   // a replaced scheduler is the caller's
                if (path == "sdxl-dpm++2m") pipe.Scheduler = SchedulerAliases.Build("dpm++2m", (DiffusersConfig)loaded.Config);
                CrossAttentionOptions? kwargs = null;
                if (path == "sdxl-lora")
                {
                    pipe.LoadLoraWeights(G("tiny-sdxl-lora/diffusers/pytorch_lora_weights.safetensors"), adapterName: "a");
                    pipe.LoadLoraWeights(G("tiny-sdxl-lora/kohya.safetensors"), adapterName: "b");
                    pipe.SetAdapters(["a", "b"], [0.7, 0.5]);
                    kwargs = new CrossAttentionOptions { Scale = 0.9 };
                }
                Image? face = null;
                if (path == "sdxl-ip-adapter")
                {
                    // the SDXL-width plus adapter on the tiny encoder (as IPAdapterSdxlPipelineTests assemble it)
                    pipe.ImageEncoder = CLIPVisionModelWithProjection.FromPretrained(G("ip-adapter/image_encoder"));
                    pipe.LoadIPAdapter(G("ip-adapter"), "sdxl", "ip-adapter-sdxl-plus.safetensors");
                    face = Img("ip-adapter/ip-image.png");
                }
                double guidance = path == "sdxl-no-cfg" ? 1.0 : 5.0;
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, height: Size, width: Size, numInferenceSteps: n, guidanceScale: guidance,
                    negativePrompt: "blurry", seed: 0, progress: soak, crossAttentionKwargs: kwargs, ipAdapterImage: face));
                return;
            }
            case "sdxl-img2img" or "sdxl-refiner":
            {
                using var pipe = StableDiffusionXLImg2ImgPipeline.FromPretrained(G(path == "sdxl-refiner" ? "tiny-sdxl-refiner" : "tiny-sdxl"));
                var init = Img("img2img-init.png");
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, init, strength: 0.9, numInferenceSteps: n, guidanceScale: 5.0,
                    negativePrompt: "ugly", seed: 0, progress: soak));
                return;
            }
            case "sdxl-inpaint":
            {
                using var pipe = StableDiffusionXLInpaintPipeline.FromPretrained(G("tiny-sdxl"));
                var init = Img("img2img-init.png");
                var mask = Img("inpaint-mask.png");
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, init, mask, numInferenceSteps: n, guidanceScale: 5.0, seed: 0, progress: soak));
                return;
            }
            case "sdxl-controlnet":
            {
                ControlNetModel net;
                using (var unet = UNet2DConditionModel.FromPretrained(G("tiny-sdxl"), "unet"))
                    net = ControlNetModel.FromUnet(unet, conditioningEmbeddingOutChannels: [16, 32]);
                using var pipe = StableDiffusionXLControlNetPipeline.FromPretrained(G("tiny-sdxl"), net);
                var edges = Img("controlnet-edges.png");
                LongRun(soak, pipe.Scheduler, steps, n => pipe.Generate(Prompt, [edges], numInferenceSteps: n, guidanceScale: 5.0, height: Size, width: Size,
                    seed: 0, progress: soak));
                return;
            }
            case "service" or "service-sdxl":
            {
                // one request kind repeated: 50 steps a request, a TAESD (SD) or latent-RGB (SDXL) preview after every step
                using var service = GenerationService.Load(G(path == "service" ? "tiny-sd" : "tiny-sdxl"));
                using var taesd = path == "service" ? AutoencoderTiny.FromPretrained(G("tiny-taesd")) : null;
                if (taesd is not null) service.Taesd = new TaesdPreview(taesd);
                service.PreviewEvery = 1;
                var request = new GenerationRequest { Prompt = Prompt, NegativePrompt = "blurry", Steps = 50, Width = Size, Height = Size, Seed = 0 };
                long previews = 0;
                var progress = new SyncProgress<GenerationProgress>(p => { if (p.PreviewPng is not null) previews++; soak.Report(new PipelineProgress(p.Step, p.TotalSteps, 0, TimeSpan.Zero)); });
                Repeated(soak, steps, 50, 1, _ => { service.Generate(request, progress); });
                soak.Note($"previews: {previews}");
                return;
            }
            case "service-mixed":
            {
                // every request kind of the service in turn (schedulers, img2img, inpaint, mask crop, a LoRA, no guidance)
                using var service = GenerationService.Load(G("tiny-sd"));
                using var taesd = AutoencoderTiny.FromPretrained(G("tiny-taesd"));
                service.Taesd = new TaesdPreview(taesd);
                service.PreviewEvery = 5;
                service.LoraDirectory = G("tiny-sd-lora");
                var init = Img("img2img-init.png");
                var mask = Img("inpaint-mask.png");
                var basic = new GenerationRequest { Prompt = Prompt, NegativePrompt = "blurry", Steps = 25, Width = Size, Height = Size, Seed = 0 };
                GenerationRequest[] cycle =
                [
                    basic with { Scheduler = "euler-a" },
                    basic with { Scheduler = "dpm++2m-sde-karras", InitImage = init, Strength = 0.8 },
                    basic with { Scheduler = "heun", InitImage = init, Mask = mask },
                    basic with { Scheduler = "unipc", InitImage = init, Mask = mask, PaddingMaskCrop = 4, Width = null, Height = null },
                    basic with { Scheduler = "lms", Loras = new Dictionary<string, double> { ["kohya"] = 0.8 } },
                    basic with { Scheduler = "ddim", GuidanceScale = 1.0 },
                ];
                var progress = new SyncProgress<GenerationProgress>(p => soak.Report(new PipelineProgress(p.Step, p.TotalSteps, 0, TimeSpan.Zero)));
                Repeated(soak, steps, 25, cycle.Length, i => { service.Generate(cycle[i % cycle.Length], progress); });
                return;
            }
            case "image-generator":
            {
                // IImageGenerator: each request on a thread-pool thread (Task.Run), so only TotalCount (all threads) applies
                using var service = GenerationService.Load(G("tiny-sd"));
                using var generator = new DiffusersImageGenerator(service);
                var options = new ImageGenerationOptions
                {
                    ImageSize = new System.Drawing.Size(Size, Size),
                    AdditionalProperties = new() { [DiffusersImageGenerator.Seed] = 0L, [DiffusersImageGenerator.Steps] = 50 },
                };
                Repeated(soak, steps, 50, 1, _ =>
                {
                    generator.GenerateAsync(new ImageGenerationRequest(Prompt), options).GetAwaiter().GetResult();
                    soak.AddSteps(50);
                });
                return;
            }
            case "train":
            {
                string dir = Path.Combine(Path.GetTempPath(), $"diffusers-memory-train-{Environment.ProcessId}");
                try
                {
                    string data = Path.Combine(dir, "data");
                    CatFaceGenerator.WriteDataset(data, 256, 20, seed: 1);
                    var options = new UnconditionalTrainingOptions
                    {
                        DataDir = data, OutputDir = Path.Combine(dir, "out"), Resolution = 16, BatchSize = 8, MaxSteps = steps,
                        BlockOutChannels = [8, 16], LayersPerBlock = 1, NormNumGroups = 4, AttentionLevels = [1],
                        LearningRate = 1e-3, LrScheduler = "cosine", LrWarmupSteps = 2, NumTrainTimesteps = 100, UseEma = true,
                        SaveImagesEveryEpochs = 0, SaveModelEveryEpochs = 0, CheckpointEvery = 0, RandomFlip = true, Seed = 3,
                    };
                    soak.Final = true;
                    new UnconditionalTrainer(options, _ => { }).Train(new SyncProgress<TrainingProgress>(p =>
                        soak.Report(new PipelineProgress((int)p.Step, (int)p.TotalSteps, 0, TimeSpan.Zero))));
                    soak.AfterCall();
                }
                finally { Directory.Delete(dir, recursive: true); }
                return;
            }
            default:
                throw new ArgumentException($"unknown path '{path}'");
        }
    }

    /// <summary>
    /// One long call (<paramref name="target"/> steps, or the most its scheduler takes; half for the two-stage schedulers)
    /// sampled every 100 steps, then two calls of 25 steps, each followed by a sample.
    /// </summary>
    private static void LongRun(MemoryPipelinesSoak soak, IScheduler scheduler, int target, Func<int, IDisposable> call)
    {
        var (n, calls) = Plan(scheduler, target);
        if (calls > 1)
        {
            Repeated(soak, target, n, 1, _ => { using (call(n)) { } });
            return;
        }
        soak.Final = true;
        for (int attempt = 0; ; attempt++)
        {
            soak.Note($"{scheduler.ClassName}: one call of {n} inference steps, then two of {Math.Min(n, 25)}");
            try
            {
                using (call(n)) { }
                break;
            }
            catch (NonFiniteLatentsException e) when (attempt < 3)
            {
                // a schedule of n steps that is degenerate (diffusers' too): DPM-Solver's "leading" step ratio
                // T // (n + 1) is 0 at n = T, and LMS's first two sigmas coincide at n = T (t = T clamps to T - 1)
                soak.Note($"{n} steps stop with non-finite latents ({e.Message[..e.Message.IndexOf(';')]}); one step fewer");
                soak.Restart();
                n--;
            }
        }
        int shortSteps = Math.Min(n, 25);
        soak.Final = false;
        soak.InCall = false;
        soak.AfterCall();
        for (int i = 0; i < 2; i++)
        {
            using (call(shortSteps)) { }
            soak.AfterCall();
        }
    }

    /// <summary>Calls of <paramref name="perCall"/> steps until <paramref name="target"/> UNet steps, a sample after each.</summary>
    private static void Repeated(MemoryPipelinesSoak soak, int target, int perCall, int cycle, Action<int> call)
    {
        int calls = Math.Max(2 * cycle, (target + perCall - 1) / perCall);
        calls = (calls + cycle - 1) / cycle * cycle;
        soak.Cycle = cycle;
        soak.InCall = true;
        soak.Note($"{calls} calls of {perCall} inference steps{(cycle > 1 ? $", a cycle of {cycle} request kinds" : "")}");
        for (int i = 0; i < calls; i++)
        {
            soak.Final = i == calls - 1;
            call(i);
            soak.AfterCall();
        }
    }

    /// <summary>
    /// The inference steps of the long call: <paramref name="target"/>, or one less (a "leading" schedule with steps_offset 1
    /// reaches the training steps at 1000), halved when the schedule is about twice as long (Heun, KDPM2); a scheduler
    /// that takes neither (LCM: at most original_inference_steps) runs calls of 50.
    /// </summary>
    private static (int Steps, int Calls) Plan(IScheduler scheduler, int target)
    {
        foreach (int n in new[] { target, target - 1 })
        {
            try
            {
                scheduler.SetTimesteps(n);
                long length = scheduler.Timesteps.shape[0];
                if (length <= n * 3 / 2) return (n, 1);
                scheduler.SetTimesteps(n / 2);
                return (n / 2, 1);
            }
            catch (DiffusersException) { }
        }
        scheduler.SetTimesteps(50);
        return (50, (target + 49) / 50);
    }

    /// <summary>tests/golden/<paramref name="name"/>, found from the working directory up.</summary>
    private static string G(string name)
    {
        for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
        {
            string golden = Path.Combine(dir.FullName, "tests", "golden");
            if (Directory.Exists(golden)) return Path.Combine(golden, name);
        }
        throw new DirectoryNotFoundException("tests/golden not found above the working directory; run from the repository");
    }

    /// <summary>tests/golden/<paramref name="name"/>, an image, at <see cref="Size"/>².</summary>
    private static Image Img(string name)
    {
        var image = Image.Load(G(name));
        return image.Width == Size && image.Height == Size ? image : ImageResize.Resize(image, Size, Size);
    }

    /// <summary>The 9-channel inpaint folder: tiny-sd-inpaint's model_index.json and UNet with tiny-sd's other components.</summary>
    private static TempFolder InpaintFolder()
    {
        var dir = new TempFolder();
        File.Copy(G("tiny-sd-inpaint/model_index.json"), Path.Combine(dir.Path, "model_index.json"));
        foreach (var (name, src) in new[] { ("tokenizer", "tiny-sd"), ("text_encoder", "tiny-sd"), ("vae", "tiny-sd"), ("scheduler", "tiny-sd"), ("unet", "tiny-sd-inpaint") })
        {
            Directory.CreateDirectory(Path.Combine(dir.Path, name));
            foreach (var f in Directory.GetFiles(G(Path.Combine(src, name))))
                File.Copy(f, Path.Combine(dir.Path, name, Path.GetFileName(f)));
        }
        return dir;
    }

    private sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("diffusers-memory-").FullName;
        public void Dispose() => Directory.Delete(Path, recursive: true);
    }

    /// <summary>A synchronous IProgress (System.Progress posts to the thread pool).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
