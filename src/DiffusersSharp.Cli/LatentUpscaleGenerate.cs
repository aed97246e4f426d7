using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers generate</c> on a <see cref="StableDiffusionLatentUpscalePipeline"/> folder (e.g.
/// stabilityai/sd-x2-latent-upscaler): <c>--image</c> (an RGB image, VAE-encoded with a posterior sample drawn from
/// <c>--seed</c>) upscaled 2× guided by <c>--prompt</c>; <c>--negative-prompt --guidance --steps --seed --batch
/// --scheduler --scheduler-config --vae --freeu</c> apply. <c>--batch N</c> upscales the image N times (diffusers' call has
/// no num_images_per_prompt: the prompt and the image are repeated).
/// </summary>
internal static class LatentUpscaleGenerate
{
    /// <summary>The route of the latent upscaler (<see cref="IGenerateRoute"/>); its <c>--image</c> is the x4 upscaler's option.</summary>
    internal sealed class Route : IGenerateRoute
    {
        public bool Claims(string className) => className == StableDiffusionLatentUpscalePipeline.Name;
        public bool TextConditioned => true;
        public bool TakesImageOption(string className) => Claims(className);
        public ImagePipelineOutput Execute(GenerateRun g) => LatentUpscaleGenerate.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, g.Options, g.OutputType);
    }

    /// <summary>Upscales <c>--image</c> 2× with a StableDiffusionLatentUpscalePipeline folder; the caller saves the result.</summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className,
        LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        var u = r.StableDiffusionUpscale;
        if (u.Image is null) throw new UserException($"{className} needs --image (the image to upscale 2x)");
        if (o.Prompt is null) throw new UserException($"{className} needs --prompt");
        // --noise-level never gets here: the x4 upscaler's route refuses it on every other class first
        string? refused = o.GuidanceRescale is not null ? "--guidance-rescale"
            : o.Width is not null ? "--width" : o.Height is not null ? "--height" : o.InitImage is not null ? "--init-image"
            : o.Strength is not null ? "--strength" : o.Mask is not null ? "--mask" : o.PaddingMaskCrop is not null ? "--padding-mask-crop"
            : o.Timesteps is not null ? "--timesteps" : o.ClipSkip is not null ? "--clip-skip" : r.Eta is not null ? "--eta"
            : r.Components.EmbeddingArgs.Count > 0 ? "--embedding" : r.Lora.FirstGiven ?? r.ControlNet.FirstGiven ?? r.Preview.FirstGiven;
        if (refused is not null)
            throw new UserException($"{className} takes no {refused}: it upscales --image 2x (diffusers 0.25.1's {className} has no such argument)");
        var image = InputImage.Load(u.Image, "--image");
        options = options with { Log = ctx.Warn };

        using var pipe = NativeFailures.During($"loading {folder}", () => StableDiffusionLatentUpscalePipeline.FromPretrained(folder, options));
        ComponentOptions.Apply(ctx, r.Components, pipe, options.CacheDir);
        using var prepared = PipelineOptions.Prepare(ctx, r, pipe, options.CacheDir);
        int steps = r.Steps ?? 75;
        double guidance = o.Guidance ?? 9.0;
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · guidance {guidance} · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        var prompts = Enumerable.Repeat(o.Prompt, r.Batch).ToArray();
        PromptInput negative = o.NegativePrompt is null ? default : Enumerable.Repeat(o.NegativePrompt, r.Batch).ToArray();
        var images = Enumerable.Repeat(image.ToRgb(), r.Batch).ToArray();
        return NativeFailures.During($"generating with {folder} (--batch {r.Batch}, {steps} steps, --image {image.Width}x{image.Height})", () =>
            ProgressDisplay.Run(ctx, steps, progress => pipe.Generate(prompts, images, steps, guidance, negative, r.Seed,
                outputType: outputType, progress: progress, cancellationToken: ctx.CancellationToken)));
    }
}
