using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Runtime;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.ScopeAudit;

/// <summary>
/// Every pipeline's call (diffusers' <c>__call__</c>: <c>Generate</c>), with every scheduler alias on Stable Diffusion and
/// every output type, and the public prompt encoders, run with no dispose scope open and leave no tensor made outside
/// a scope (docs/ARCHITECTURE.md, "Tensor ownership"; <see cref="Support.ScopeAudit"/>). The tiny golden models, 2 steps.
/// </summary>
public class PipelineScopeAuditTests
{
    private const string Prompt = "a photo of a cat";

    public static TheoryData<string> Cases() => new(
    [
        "ddpm", "ddim", "ldm", "ldm-super-resolution",
        "sd", .. SchedulerAliases.Aliases.Keys.Order(StringComparer.Ordinal).Select(a => "sd-" + a),
        "sd-output-np", "sd-output-pt", "sd-output-latent", "sd-no-cfg", "sd-guidance-rescale", "sd-taesd", "sd-taesd-previews", "sd-lora",
        "sd-img2img", "sd-inpaint", "sd-inpaint-4ch", "sd-inpaint-crop", "sd-upscale", "sd-latent-upscale", "sd-latent-upscale-rgb", "sd-instruct-pix2pix",
        "sd-panorama", "sd-panorama-circular-ip-adapter",
        "controlnet", "controlnet-multi", "controlnet-img2img", "controlnet-inpaint",
        "sd-ip-adapter", "sd-img2img-ip-adapter-plus", "sd-inpaint-ip-adapter", "controlnet-ip-adapter-plus", "controlnet-img2img-ip-adapter",
        "controlnet-inpaint-ip-adapter", "sd-instruct-pix2pix-ip-adapter-plus",
        "sdxl-ip-adapter", "sdxl-img2img-ip-adapter-plus", "sdxl-inpaint-ip-adapter", "sdxl-controlnet-ip-adapter",
        "sdxl", "sdxl-img2img", "sdxl-refiner", "sdxl-inpaint", "sdxl-controlnet", "sdxl-controlnet-img2img", "sdxl-controlnet-inpaint",
        "sd-adapter", "sd-adapter-multi", "sdxl-adapter",
        "dit", "dit-no-cfg", "consistency", "consistency-random-labels", "lcm", "lcm-img2img",
    ]);

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryPipelineCallRunsItsTensorWorkInADisposeScope(string name)
    {
        using var owned = new Owned();
        Func<ImagePipelineOutput> call = Build(name, owned);
        var audit = new Support.ScopeAudit();
        using (var output = audit.Call(name, call, noGrad: false))
            Assert.True(output.Images.Count > 0 || output.Tensor is not null || output.Array is not null, name);
        audit.AssertAllScoped();
    }

    [Fact]
    public void ThePromptEncodersRunTheirTensorWorkInADisposeScope()
    {
        using var sd = StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd"));
        using var sdxl = StableDiffusionXLPipeline.FromPretrained(Golden.Path("tiny-sdxl"));
        var audit = new Support.ScopeAudit();
        using (var e = audit.Call("StableDiffusionPipeline.EncodePrompt", () => sd.EncodePrompt(Prompt, 2, true, "blurry")))
            Assert.Equal(2, e.PromptEmbeds.shape[0]);
        using (var e = audit.Call("StableDiffusionXLPipeline.EncodePrompt", () => sdxl.EncodePrompt(Prompt, numImagesPerPrompt: 2, negativePrompt: "blurry")))
            Assert.Equal(2, e.PromptEmbeds.shape[0]);
        audit.AssertAllScoped();
    }

    [Fact]
    public void TheBuildingBlocksOfACustomPipelineRunTheirTensorWorkInADisposeScope()
    {
        // a pipeline of one's own (docs/CONTRIBUTING.md, "Walkthrough: a pipeline"): randn_tensor, a DenoisingContext and a
        // DenoisingLoop, guidance rescaling
        using var unet = UNet2DModel.FromPretrained(Golden.Path("tiny-ddpm"), "unet");
        var scheduler = SchedulerAliases.Build("dpm++2m", (DiffusersConfig)SchedulerFactory.ReadConfigFile(Golden.Path("tiny-sd"), "scheduler"));
        scheduler.SetTimesteps(3);
        long[] shape = [2, unet.Config.InChannels, 32, 32];
        var audit = new Support.ScopeAudit();
        var latents = audit.Call("TorchUtils.RandnTensor", () => TorchUtils.RandnTensor(shape, new Generator(0), ScalarType.Float32, CPU));
        audit.Call("TorchUtils.RandnTensor (bf16)", () => TorchUtils.RandnTensor(shape, new Generator(0), ScalarType.BFloat16, CPU));
        audit.Call("TorchUtils.RandnTensor (a generator per sample)", () => TorchUtils.RandnTensor(shape, [new Generator(1), new Generator(2)], ScalarType.Float32, CPU));
        var ctx = audit.Call("DenoisingContext", () => new DenoisingContext("custom", scheduler, scheduler.Timesteps, latents));
        using (var result = audit.Call("DenoisingLoop.Run", () => new UNetLoop(unet).Run(ctx)))
            Assert.Equal(shape, result.shape);
        var text = torch.randn([2, 4, 8, 8], generator: new Generator(3));
        var cfg = torch.randn([2, 4, 8, 8], generator: new Generator(4));
        audit.Call("StableDiffusionPipelineBase.RescaleNoiseCfg", () => StableDiffusionPipelineBase.RescaleNoiseCfg(cfg, text, 0.7));
        audit.AssertAllScoped();
    }

    /// <summary>A custom pipeline's loop: the UNet's prediction.</summary>
    private sealed class UNetLoop(UNet2DModel unet) : DenoisingLoop
    {
        protected override Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents) =>
            unet.Forward(latents, timestep).Sample;
    }

    private static Func<ImagePipelineOutput> Build(string name, Owned owned)
    {
        var init = Img("img2img-init.png");
        var mask = Img("inpaint-mask.png");
        var edges = Img("controlnet-edges.png");
        var scribble = Img("controlnet-scribble.png");
        if (name.StartsWith("sd-", StringComparison.Ordinal) && SchedulerAliases.Aliases.ContainsKey(name[3..]))
        {
            var pipe = owned.Add(StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd")));
            pipe.Scheduler = SchedulerAliases.Build(name[3..], (DiffusersConfig)pipe.Scheduler.Config);
            return () => pipe.Generate(Prompt, "", 7.5, height: 32, width: 32, numInferenceSteps: 2, seed: 0);
        }
        switch (name)
        {
            case "ddpm":
            {
                var pipe = owned.Add(DDPMPipeline.FromPretrained(Golden.Path("tiny-ddpm")));
                return () => pipe.Generate(numInferenceSteps: 2, seed: 0);
            }
            case "consistency":
            {
                var pipe = owned.Add(ConsistencyModelPipeline.FromPretrained(Golden.Path("tiny-consistency")));
                return () => pipe.Generate(2, classLabels: [3, 7], timesteps: [22, 0], seed: 0);
            }
            case "consistency-random-labels":
            {
                var pipe = owned.Add(ConsistencyModelPipeline.FromPretrained(Golden.Path("tiny-consistency")));
                return () => pipe.Generate(2, numInferenceSteps: 2, seed: 0, outputType: OutputType.Pt);
            }
            case "ldm":
            {
                var pipe = owned.Add(LDMPipeline.FromPretrained(Golden.Path("ldm", "tiny-ldm")));
                return () => pipe.Generate(numInferenceSteps: 2, eta: 1.0, seed: 0);
            }
            case "ldm-super-resolution":
            {
                var pipe = owned.Add(LDMSuperResolutionPipeline.FromPretrained(Golden.Path("ldm", "tiny-ldm-sr")));
                var lowRes = Image.Load(Golden.Path("ldm", "lowres.png"));
                return () => pipe.Generate(lowRes, 2, eta: 1.0, seed: 0);
            }
            case "ddim":
            {
                var pipe = owned.Add(DDIMPipeline.FromPretrained(Golden.Path("tiny-ddpm")));
                return () => pipe.Generate(numInferenceSteps: 2, eta: 1.0, seed: 0);
            }
            case "sd" or "sd-output-np" or "sd-output-pt" or "sd-output-latent" or "sd-no-cfg" or "sd-guidance-rescale":
            {
                var pipe = owned.Add(StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd")));
                var type = name switch
                {
                    "sd-output-np" => OutputType.Np,
                    "sd-output-pt" => OutputType.Pt,
                    "sd-output-latent" => OutputType.Latent,
                    _ => OutputType.Pil,
                };
                double guidance = name == "sd-no-cfg" ? 1.0 : 7.5;
                double rescale = name == "sd-guidance-rescale" ? 0.7 : 0.0;
                return () => pipe.Generate(Prompt, "blurry", guidance, rescale, height: 32, width: 32, numInferenceSteps: 2, seed: 0, outputType: type);
            }
            case "sd-taesd" or "sd-taesd-previews":
            {
                var pipe = owned.Add(StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd")));
                var taesd = owned.Add(AutoencoderTiny.FromPretrained(Golden.Path("tiny-taesd")));
                StepEndCallback? previews = null;
                if (name == "sd-taesd") pipe.Vae = taesd;
                else previews = new TaesdPreview(taesd).Every(1, (_, _, image) => Assert.True(image.Width > 0));
                return () => pipe.Generate(Prompt, "", 7.5, height: 32, width: 32, numInferenceSteps: 2, seed: 0, callbackOnStepEnd: previews);
            }
            case "sd-lora":
            {
                var pipe = owned.Add(StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd")));
                pipe.LoadLoraWeights(Golden.Path("tiny-sd-lora", "kohya.safetensors"), adapterName: "k");
                return () => pipe.Generate(Prompt, "", 7.5, height: 32, width: 32, numInferenceSteps: 2, seed: 0,
                    crossAttentionKwargs: new CrossAttentionOptions { Scale = 0.8 });
            }
            case "sd-img2img":
            {
                var pipe = owned.Add(StableDiffusionImg2ImgPipeline.FromPretrained(Golden.Path("tiny-sd")));
                return () => pipe.Generate(Prompt, init, 0.9, "", 7.5, numInferenceSteps: 2, seed: 0);
            }
            case "lcm" or "lcm-img2img":
            {
                var dir = owned.Add(Pipelines.LatentConsistencyModelPipelineTests.Folder());
                if (name == "lcm")
                {
                    var pipe = owned.Add(LatentConsistencyModelPipeline.FromPretrained(dir.Path));
                    return () => pipe.Generate(Prompt, height: 32, width: 32, numInferenceSteps: 2, seed: 0);
                }
                var img2img = owned.Add(LatentConsistencyModelImg2ImgPipeline.FromPretrained(dir.Path));
                return () => img2img.Generate(Prompt, init, numInferenceSteps: 2, strength: 0.9, seed: 0);
            }
            case "sd-upscale":
            {
                var pipe = owned.Add(StableDiffusionUpscalePipeline.FromPretrained(Golden.Path("tiny-sd-upscale")));
                var lowRes = Image.Load(Golden.Path("upscale", "low-res-16x16.png"));
                return () => pipe.Generate(Prompt, lowRes, numInferenceSteps: 2, negativePrompt: "", seed: 0);
            }
            case "sd-latent-upscale" or "sd-latent-upscale-rgb":
            {
                var folder = owned.Add(Pipelines.StableDiffusionLatentUpscalePipelineTests.AssembleFolder());
                var pipe = owned.Add(StableDiffusionLatentUpscalePipeline.FromPretrained(folder.Path));
                // SD latents (guidance, a PIL image out), or an RGB image the VAE encodes (its posterior sampled from the seed)
                ImageInput image = name == "sd-latent-upscale"
                    ? owned.Add(Golden.Tensor("latent-upscale/latent-upscale-expected.safetensors", "pipeline/image"))
                    : Image.Load(Golden.Path("upscale", "low-res-16x16.png"));
                return () => pipe.Generate(Prompt, image, numInferenceSteps: 2, guidanceScale: name == "sd-latent-upscale" ? 7.5 : 0, seed: 0);
            }
            case "sd-instruct-pix2pix":
            {
                var pipe = owned.Add(StableDiffusionInstructPix2PixPipeline.FromPretrained(Golden.Path("tiny-sd-instruct-pix2pix")));
                return () => pipe.Generate(Prompt, init, numInferenceSteps: 2, seed: 0);
            }
            case "sd-panorama" or "sd-panorama-circular-ip-adapter":
            {
                // tiny-sd (PNDM, a history per batch of windows) at 16x640: diffusers' get_views sees 2x80, three windows (ten
                // circular) over the 8x320 latents of its scale-2 VAE; view_batch_size 2 makes a scheduler copy
                var pipe = owned.Add(StableDiffusionPanoramaPipeline.FromPretrained(Golden.Path("tiny-sd")));
                pipe.Log = _ => { };
                if (name == "sd-panorama")
                    return () => pipe.Generate(Prompt, height: 16, width: 640, numInferenceSteps: 2, viewBatchSize: 2, seed: 0);
                pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", "ip-adapter-basic.safetensors");
                ImageInput ip = Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png"));
                return () => pipe.Generate(Prompt, height: 16, width: 640, numInferenceSteps: 2, circularPadding: true, seed: 0, ipAdapterImage: ip);
            }
            case "dit" or "dit-no-cfg":
            {
                var pipe = owned.Add(DiTPipeline.FromPretrained(Golden.Path("tiny-dit")));
                return () => pipe.Generate([207, 1], name == "dit" ? 4.0 : 1.0, numInferenceSteps: 2, seed: 0);
            }
            case "sd-inpaint" or "sd-inpaint-4ch" or "sd-inpaint-crop":
            {
                string folder = Golden.Path("tiny-sd");
                if (name == "sd-inpaint")
                {
                    var dir = owned.Add(new TempDir());
                    File.Copy(Golden.Path("tiny-sd-inpaint", "model_index.json"), dir.File("model_index.json"));
                    foreach (var (part, src) in new[] { ("tokenizer", "tiny-sd"), ("text_encoder", "tiny-sd"), ("vae", "tiny-sd"), ("scheduler", "tiny-sd"), ("unet", "tiny-sd-inpaint") })
                    {
                        Directory.CreateDirectory(dir.File(part));
                        foreach (var f in Directory.GetFiles(Golden.Path(src, part)))
                            File.Copy(f, Path.Combine(dir.File(part), Path.GetFileName(f)));
                    }
                    folder = dir.Path;
                }
                var pipe = owned.Add(StableDiffusionInpaintPipeline.FromPretrained(folder));
                int? crop = name == "sd-inpaint-crop" ? 4 : null;
                return () => pipe.Generate(Prompt, init, mask, 1.0, crop is null ? 32 : null, crop is null ? 32 : null, "", 7.5,
                    numInferenceSteps: 2, seed: 0, paddingMaskCrop: crop);
            }
            case "controlnet" or "controlnet-multi":
            {
                TorchSharp.torch.nn.Module nets = name == "controlnet" ? ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet"))
                    : new MultiControlNetModel([ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet")), ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet"))]);
                var pipe = owned.Add(StableDiffusionControlNetPipeline.FromPretrained(Golden.Path("tiny-sd"), nets));
                ImageInput[] images = name == "controlnet" ? [edges] : [edges, scribble];
                return () => pipe.Generate(Prompt, images, 32, 32, 2, 7.5, "", seed: 0, guessMode: name == "controlnet-multi");
            }
            case "controlnet-img2img":
            {
                var pipe = owned.Add(StableDiffusionControlNetImg2ImgPipeline.FromPretrained(Golden.Path("tiny-sd"), ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet"))));
                return () => pipe.Generate(Prompt, init, [scribble], strength: 0.9, numInferenceSteps: 2, seed: 0);
            }
            case "controlnet-inpaint":
            {
                var pipe = owned.Add(StableDiffusionControlNetInpaintPipeline.FromPretrained(Golden.Path("tiny-sd"), ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet"))));
                return () => pipe.Generate(Prompt, init, mask, [edges], strength: 0.9, numInferenceSteps: 2, seed: 0);
            }
            case "sd-ip-adapter" or "sd-img2img-ip-adapter-plus" or "sd-inpaint-ip-adapter" or "controlnet-ip-adapter-plus"
                or "controlnet-img2img-ip-adapter" or "controlnet-inpaint-ip-adapter":
            {
                // the IP-Adapter path of every SD pipeline that takes ipAdapterImage (basic: image embeds; plus: hidden states)
                string sd = Golden.Path("tiny-sd");
                ControlNetModel Net() => ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet"));
                StableDiffusionPipelineBase pipe = owned.Add<StableDiffusionPipelineBase>(name switch
                {
                    "sd-ip-adapter" => StableDiffusionPipeline.FromPretrained(sd),
                    "sd-img2img-ip-adapter-plus" => StableDiffusionImg2ImgPipeline.FromPretrained(sd),
                    "sd-inpaint-ip-adapter" => StableDiffusionInpaintPipeline.FromPretrained(sd),
                    "controlnet-ip-adapter-plus" => StableDiffusionControlNetPipeline.FromPretrained(sd, Net()),
                    "controlnet-img2img-ip-adapter" => StableDiffusionControlNetImg2ImgPipeline.FromPretrained(sd, Net()),
                    _ => StableDiffusionControlNetInpaintPipeline.FromPretrained(sd, Net()),
                });
                pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", name.EndsWith("-plus", StringComparison.Ordinal) ? "ip-adapter-plus.bin" : "ip-adapter-basic.bin");
                ImageInput ip = Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png"));
                return pipe switch
                {
                    StableDiffusionPipeline p => () => p.Generate(Prompt, "", height: 32, width: 32, numInferenceSteps: 2, seed: 0, ipAdapterImage: ip),
                    StableDiffusionImg2ImgPipeline p => () => p.Generate(Prompt, init, 0.9, "", numInferenceSteps: 2, seed: 0, ipAdapterImage: ip),
                    StableDiffusionInpaintPipeline p => () => p.Generate(Prompt, init, mask, 1.0, 32, 32, "", numInferenceSteps: 2, seed: 0, ipAdapterImage: ip),
                    StableDiffusionControlNetPipeline p => () => p.Generate(Prompt, [edges], 32, 32, 2, 7.5, "", seed: 0, ipAdapterImage: ip),
                    StableDiffusionControlNetImg2ImgPipeline p => () => p.Generate(Prompt, init, [scribble], strength: 0.9, numInferenceSteps: 2, seed: 0, ipAdapterImage: ip),
                    StableDiffusionControlNetInpaintPipeline p => () => p.Generate(Prompt, init, mask, [edges], strength: 0.9, numInferenceSteps: 2, seed: 0, ipAdapterImage: ip),
                    _ => throw new InvalidOperationException(name),
                };
            }
            case "sd-instruct-pix2pix-ip-adapter-plus":
            {
                var pipe = owned.Add(StableDiffusionInstructPix2PixPipeline.FromPretrained(Golden.Path("tiny-sd-instruct-pix2pix")));
                pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", "ip-adapter-plus.bin");
                ImageInput ip = Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png"));
                return () => pipe.Generate(Prompt, init, numInferenceSteps: 2, seed: 0, ipAdapterImage: ip);
            }
            case "sdxl-ip-adapter" or "sdxl-img2img-ip-adapter-plus" or "sdxl-inpaint-ip-adapter" or "sdxl-controlnet-ip-adapter":
            {
                // the IP-Adapter path of every SDXL pipeline that takes ipAdapterImage, with the SDXL-width tiny adapters
                string xl = Golden.Path("tiny-sdxl");
                StableDiffusionXLPipelineBase pipe = owned.Add<StableDiffusionXLPipelineBase>(name switch
                {
                    "sdxl-ip-adapter" => StableDiffusionXLPipeline.FromPretrained(xl),
                    "sdxl-img2img-ip-adapter-plus" => StableDiffusionXLImg2ImgPipeline.FromPretrained(xl),
                    "sdxl-inpaint-ip-adapter" => StableDiffusionXLInpaintPipeline.FromPretrained(xl),
                    _ => StableDiffusionXLControlNetPipeline.FromPretrained(xl, ControlNetModel.FromPretrained(Golden.Path("sdxl-controlnet-img2img", "controlnet"))),
                });
                pipe.ImageEncoder = CLIPVisionModelWithProjection.FromPretrained(Golden.Path("ip-adapter", "image_encoder"));
                pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "sdxl", name.EndsWith("-plus", StringComparison.Ordinal) ? "ip-adapter-sdxl-plus.bin" : "ip-adapter-sdxl-basic.bin");
                ImageInput ip = Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png"));
                return pipe switch
                {
                    StableDiffusionXLPipeline p => () => p.Generate(Prompt, height: 32, width: 32, numInferenceSteps: 2, seed: 0, ipAdapterImage: ip),
                    StableDiffusionXLImg2ImgPipeline p => () => p.Generate(Prompt, init, strength: 0.9, numInferenceSteps: 2, seed: 0, ipAdapterImage: ip),
                    StableDiffusionXLInpaintPipeline p => () => p.Generate(Prompt, init, mask, height: 32, width: 32, numInferenceSteps: 2, seed: 0, ipAdapterImage: ip),
                    StableDiffusionXLControlNetPipeline p => () => p.Generate(Prompt, [edges], height: 32, width: 32, numInferenceSteps: 2, seed: 0, ipAdapterImage: ip),
                    _ => throw new InvalidOperationException(name),
                };
            }
            case "sdxl":
            {
                var pipe = owned.Add(StableDiffusionXLPipeline.FromPretrained(Golden.Path("tiny-sdxl")));
                return () => pipe.Generate(Prompt, height: 32, width: 32, numInferenceSteps: 2, guidanceScale: 5.0, negativePrompt: "blurry", seed: 0);
            }
            case "sdxl-img2img" or "sdxl-refiner":
            {
                var pipe = owned.Add(StableDiffusionXLImg2ImgPipeline.FromPretrained(Golden.Path(name == "sdxl-refiner" ? "tiny-sdxl-refiner" : "tiny-sdxl")));
                return () => pipe.Generate(Prompt, init, strength: 0.9, numInferenceSteps: 2, guidanceScale: 5.0, negativePrompt: "ugly", seed: 0);
            }
            case "sdxl-inpaint":
            {
                var pipe = owned.Add(StableDiffusionXLInpaintPipeline.FromPretrained(Golden.Path("tiny-sdxl")));
                return () => pipe.Generate(Prompt, init, mask, numInferenceSteps: 2, guidanceScale: 5.0, seed: 0);
            }
            case "sdxl-controlnet":
            {
                ControlNetModel net;
                using (var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sdxl"), "unet"))
                    net = ControlNetModel.FromUnet(unet, conditioningEmbeddingOutChannels: [16, 32]);
                var pipe = owned.Add(StableDiffusionXLControlNetPipeline.FromPretrained(Golden.Path("tiny-sdxl"), net));
                return () => pipe.Generate(Prompt, [edges], numInferenceSteps: 2, guidanceScale: 5.0, height: 32, width: 32, seed: 0);
            }
            case "sdxl-controlnet-img2img":
            {
                var pipe = owned.Add(Tests.Pipelines.StableDiffusionXLControlNetImg2ImgPipelineTests.Pipe());
                return () => pipe.Generate(Prompt, init, [edges], strength: 0.9, numInferenceSteps: 2, guidanceScale: 5.0, seed: 0,
                    numImagesPerPrompt: 2);
            }
            case "sdxl-controlnet-inpaint":
            {
                var pipe = owned.Add(Tests.Pipelines.StableDiffusionXLControlNetInpaintPipelineTests.Pipe());
                return () => pipe.Generate(Prompt, init, mask, [edges], numInferenceSteps: 2, guidanceScale: 5.0, seed: 0,
                    numImagesPerPrompt: 2);
            }
            case "sd-adapter" or "sd-adapter-multi":
            {
                TorchSharp.torch.nn.Module adapter = name == "sd-adapter" ? Tests.Models.T2IAdapterGoldenTests.Load("sd-full")
                    : new MultiAdapter([Tests.Models.T2IAdapterGoldenTests.Load("sd-full"), Tests.Models.T2IAdapterGoldenTests.Load("sd-full")]);
                var pipe = owned.Add(Tests.Pipelines.T2IAdapterPipelineTests.SdPipe(adapter));
                ImageInput[] images = name == "sd-adapter" ? [edges] : [edges, scribble];
                return () => pipe.Generate(Prompt, images, 32, 32, 2, 7.5, "", seed: 0, numImagesPerPrompt: 2);
            }
            case "sdxl-adapter":
            {
                var pipe = owned.Add(Tests.Pipelines.T2IAdapterPipelineTests.SdxlPipe(Tests.Models.T2IAdapterGoldenTests.Load("sdxl-full")));
                return () => pipe.Generate(Prompt, [edges], numInferenceSteps: 2, guidanceScale: 5.0, height: 32, width: 32, seed: 0,
                    adapterConditioningFactor: 0.5);
            }
            default:
                throw new ArgumentException($"no case '{name}'");
        }
    }

    /// <summary>tests/golden/<paramref name="name"/> at 32².</summary>
    private static Image Img(string name) => ImageResize.Resize(Image.Load(Golden.Path(name)), 32, 32);

    /// <summary>What a case loads, disposed after it.</summary>
    private sealed class Owned : IDisposable
    {
        private readonly List<IDisposable> _items = [];

        public T Add<T>(T item) where T : IDisposable
        {
            _items.Add(item);
            return item;
        }

        public void Dispose()
        {
            for (int i = _items.Count - 1; i >= 0; i--) _items[i].Dispose();
        }
    }
}
