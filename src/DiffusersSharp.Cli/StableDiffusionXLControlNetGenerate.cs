using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using TorchSharp;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers generate --controlnet … --control-image …</c> on an SDXL base folder: text to image with
/// <see cref="StableDiffusionXLControlNetPipeline"/>, with <c>--init-image</c> (and <c>--strength</c>, default 0.8) image
/// to image with <see cref="StableDiffusionXLControlNetImg2ImgPipeline"/>, with <c>--mask</c> too inpainting with
/// <see cref="StableDiffusionXLControlNetInpaintPipeline"/> (default strength 0.9999; no <c>--refiner</c>); the
/// ControlNet options mean what they mean for Stable Diffusion, and <c>--lora</c> applies as for SDXL.
/// </summary>
internal static class StableDiffusionXLControlNetGenerate
{
    /// <summary>
    /// Runs the SDXL ControlNet pipeline on <paramref name="folder"/> (the SDXL half of <see cref="ControlNetOptions.Route"/>);
    /// the caller saves the result.
    /// </summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className,
        LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        var x = r.StableDiffusionXL;
        var c = r.ControlNet;
        if (o.Prompt is null) throw new UserException($"{className} needs --prompt");
        if (className != StableDiffusionXLPipeline.Name || File.Exists(folder))
            throw new UserException($"--controlnet with SDXL runs on an SDXL base pipeline folder or Hub id ({StableDiffusionXLPipeline.Name}); {folder} is a {className}");
        if (x.Refiner is not null) throw new UserException("--refiner is not available with --controlnet on SDXL models");
        StableDiffusionOptions.RefusePaddingMaskCrop(o, StableDiffusionXLControlNetInpaintPipeline.Name);
        StableDiffusionOptions.RefuseTimesteps(o, o.Mask is not null ? StableDiffusionXLControlNetInpaintPipeline.Name
            : o.InitImage is not null ? StableDiffusionXLControlNetImg2ImgPipeline.Name : StableDiffusionXLControlNetPipeline.Name);
        if (r.Components.FirstGiven is { } component)
            throw new UserException($"{component} is not available with --controlnet on SDXL models yet");
        if (o.GuidanceRescale is not null && o.Mask is null)
            throw new UserException("--guidance-rescale is not available with --controlnet on SDXL models except inpainting (diffusers' other ControlNet pipelines have no guidance_rescale)");
        var controls = c.ControlImages.Select(f => InputImage.Load(f, "--control-image")).ToList();
        var controlImages = controls.Select(i => (ImageInput)i).ToList();
        options = options with { Log = ctx.Warn };
        Image? init = o.InitImage is null ? null : InputImage.Load(o.InitImage, "--init-image");
        Image? mask = o.Mask is null ? null : InputImage.Load(o.Mask, "--mask");
        var size = init ?? controls[0];
        RunMemory.CheckStableDiffusion(folder, r.Batch, o.Height ?? size.Height, o.Width ?? size.Width);

        using StableDiffusionXLPipelineBase pipe = NativeFailures.During($"loading {folder} with {string.Join(", ", c.Nets)}",
            () => Load(folder, c.Nets, options, img2img: init is not null, inpaint: mask is not null));
        if (init is not null || mask is not null)
            IPAdapterOptions.Refuse(r.IPAdapter, pipe.ClassName, "diffusers 0.25.1's SDXL ControlNet img2img and inpaint pipelines have no ip_adapter_image");
        var ipAdapterImage = IPAdapterOptions.Apply(ctx, r.IPAdapter, pipe, options.CacheDir);
        using var prepared = PipelineOptions.Prepare(ctx, r, pipe, options.CacheDir);
        int steps = r.Steps ?? 50;
        double guidance = o.Guidance ?? 5.0;
        var (scale, start, end) = (c.ScaleOrDefault, c.StartOrDefault, c.EndOrDefault);
        ctx.Out.WriteLine($"{pipe.ClassName} · {c.Nets.Count} ControlNet(s) · {pipe.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · guidance {guidance} · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        using var generator = r.Seed is long seed ? new torch.Generator((ulong)seed) : null;
        return NativeFailures.During($"generating with {folder} (--batch {r.Batch}, {steps} steps)", () => ProgressDisplay.Run(ctx, steps,
            progress => pipe is StableDiffusionXLControlNetInpaintPipeline inpaint
                ? inpaint.Generate(o.Prompt, init, mask, controlImages, x.Prompt2, o.Height, o.Width, o.Strength ?? 0.9999, steps,
                    guidanceScale: guidance, negativePrompt: o.NegativePrompt, negativePrompt2: x.NegativePrompt2, numImagesPerPrompt: r.Batch,
                    eta: r.Eta ?? 0.0, generator: generator, outputType: outputType, controlnetConditioningScale: scale,
                    guessMode: c.GuessMode, controlGuidanceStart: start, controlGuidanceEnd: end, guidanceRescale: o.GuidanceRescale ?? 0.0,
                    originalSize: x.OriginalHeightWidth, cropsCoordsTopLeft: x.CropTopLeft, targetSize: x.TargetHeightWidth,
                    clipSkip: o.ClipSkip, callbackOnStepEnd: prepared.OnStepEnd, progress: progress, cancellationToken: ctx.CancellationToken)
                : init is not null
                ? ((StableDiffusionXLControlNetImg2ImgPipeline)pipe).Generate(o.Prompt, init, controlImages, x.Prompt2, o.Height, o.Width,
                    o.Strength ?? 0.8, steps, guidance, o.NegativePrompt, x.NegativePrompt2, r.Batch, r.Eta ?? 0.0, generator: generator,
                    outputType: outputType, controlnetConditioningScale: scale, guessMode: c.GuessMode, controlGuidanceStart: start,
                    controlGuidanceEnd: end, originalSize: x.OriginalHeightWidth, cropsCoordsTopLeft: x.CropTopLeft,
                    targetSize: x.TargetHeightWidth, clipSkip: o.ClipSkip, callbackOnStepEnd: prepared.OnStepEnd, progress: progress,
                    cancellationToken: ctx.CancellationToken)
                : ((StableDiffusionXLControlNetPipeline)pipe).Generate(o.Prompt, controlImages, x.Prompt2, o.Height, o.Width, steps, guidance,
                    o.NegativePrompt, x.NegativePrompt2, r.Batch, r.Eta ?? 0.0, generator: generator, outputType: outputType,
                    controlnetConditioningScale: scale, guessMode: c.GuessMode, controlGuidanceStart: start, controlGuidanceEnd: end,
                    originalSize: x.OriginalHeightWidth, cropsCoordsTopLeft: x.CropTopLeft, targetSize: x.TargetHeightWidth,
                    clipSkip: o.ClipSkip, callbackOnStepEnd: prepared.OnStepEnd, progress: progress, cancellationToken: ctx.CancellationToken,
                    ipAdapterImage: ipAdapterImage)));
    }

    /// <summary>
    /// Loads the nets, then the pipeline that takes them (img2img: <see cref="StableDiffusionXLControlNetImg2ImgPipeline"/>,
    /// inpaint: <see cref="StableDiffusionXLControlNetInpaintPipeline"/>); the nets are disposed if the pipeline cannot be built.
    /// </summary>
    private static StableDiffusionXLPipelineBase Load(string folder, IReadOnlyList<string> nets, LoadOptions options, bool img2img, bool inpaint) =>
        ControlNetOptions.WithNets<StableDiffusionXLPipelineBase>(nets, options, controlnet => inpaint
            ? StableDiffusionXLControlNetInpaintPipeline.FromPretrained(folder, controlnet, options)
            : img2img
            ? StableDiffusionXLControlNetImg2ImgPipeline.FromPretrained(folder, controlnet, options)
            : StableDiffusionXLControlNetPipeline.FromPretrained(folder, controlnet, options));
}
