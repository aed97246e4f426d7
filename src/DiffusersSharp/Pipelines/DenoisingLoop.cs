using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The denoising loop every pipeline shares: for each timestep, <see cref="StepLatents"/> (<see cref="PredictNoise"/>, the
/// pipeline's model call, then <c>scheduler.Step</c> from <see cref="StepSample"/> with the context's
/// <see cref="DenoisingContext.StepOptions"/>), <see cref="AfterStep"/>, a check
/// that the new latents are finite, then the step-end callback and the progress report. A pipeline adds its difference
/// by overriding those methods (classifier-free guidance, inpainting's extra channels and blend, ...), never by
/// handing closures down. Each step's temporaries are freed with the step.
/// </summary>
public abstract class DenoisingLoop
{
    /// <summary>Runs the loop over <paramref name="ctx"/>'s timesteps; returns the final latents (the caller's from then on).</summary>
    public Tensor Run(DenoisingContext ctx)
    {
        var values = ctx.TimestepValues;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < values.Count; i++)
        {
            ctx.CancellationToken.ThrowIfCancellationRequested();
            var latents = ctx.Latents;
            using (var scope = torch.NewDisposeScope())
            {
                var next = AfterStep(ctx, i, StepLatents(ctx, i, ctx.Timesteps[i], latents));
                CheckFinite(ctx, i, next);
                ctx.Record("latents_after_step", i, next);
                ctx.Tensors[DenoisingContext.LatentsKey] = next.MoveToOuterDisposeScope();
            }
            latents.Dispose();
            if (ctx.CallbackOnStepEnd is { } callback) CallStepEnd(ctx, callback, i);
            ctx.Progress?.Report(new PipelineProgress(i + 1, values.Count, values[i], clock.Elapsed));
        }
        return ctx.Latents;
    }

    /// <summary>
    /// The latents after step <paramref name="step"/>: <see cref="PredictNoise"/>, then the context's scheduler steps from
    /// <see cref="StepSample"/>. MultiDiffusion's loop overrides it (a scheduler step per batch of windows, then their mean).
    /// </summary>
    protected virtual Tensor StepLatents(DenoisingContext ctx, int step, Tensor timestep, Tensor latents)
    {
        var noisePred = PredictNoise(ctx, step, timestep, latents);
        using var output = ctx.Scheduler.Step(noisePred, ctx.TimestepValues[step], StepSample(ctx, step, latents), ctx.StepOptions);
        return output.PrevSample;
    }

    /// <summary>The model's noise prediction at step <paramref name="step"/> (timestep <paramref name="timestep"/>, a 0-dim tensor).</summary>
    protected abstract Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents);

    /// <summary>
    /// The sample the scheduler steps from: the latents by default; DiT's loop gives it the <c>scale_model_input</c> sample,
    /// as diffusers' DiTPipeline does.
    /// </summary>
    protected virtual Tensor StepSample(DenoisingContext ctx, int step, Tensor latents) => latents;

    /// <summary>Rewrites the latents a scheduler step produced (inpainting's blend); identity by default.</summary>
    protected virtual Tensor AfterStep(DenoisingContext ctx, int step, Tensor latents) => latents;

    /// <summary>NaN or ±Inf anywhere in the latents stops the run, naming the step that first produced them.</summary>
    private static void CheckFinite(DenoisingContext ctx, int i, Tensor latents)
    {
        using var finite = torch.isfinite(latents);
        using var all = finite.all();
        if (all.item<bool>()) return;
        using var bad = finite.logical_not().sum();
        throw new NonFiniteLatentsException(
            $"{ctx.Pipeline}: step {i + 1} of {ctx.TimestepValues.Count} (timestep " +
            $"{ctx.TimestepValues[i].ToString("R", CultureInfo.InvariantCulture)}) produced non-finite latents " +
            $"({bad.item<long>()} of {latents.numel()} values are NaN or ±Inf) with {ctx.Scheduler.ClassName}; nothing was decoded. " +
            (ctx.Scheduler.NonFiniteCause(ctx.TimestepValues[i]) is { } cause
                ? $"The scheduler's config: {cause}"
                : "Lower-precision weights (fp16) overflow most often: try fp32 or bf16, or another scheduler"));
    }

    /// <summary>Calls the step-end callback; keeps what it replaced (the latents it replaced are freed).</summary>
    private static void CallStepEnd(DenoisingContext ctx, StepEndCallback callback, int i)
    {
        var before = new Dictionary<string, Tensor>(ctx.Tensors, StringComparer.Ordinal);
        using var scope = torch.NewDisposeScope();
        callback(i, ctx.TimestepValues[i], ctx.Tensors);
        if (!ctx.Tensors.ContainsKey(DenoisingContext.LatentsKey))
            throw new DiffusersException($"{ctx.Pipeline}: the step-end callback removed \"latents\" at step {i + 1}; replace it instead");
        foreach (var (name, value) in ctx.Tensors.ToList())
        {
            if (before.TryGetValue(name, out var old) && ReferenceEquals(old, value)) continue;
            value.MoveToOuterDisposeScope();
            if (name == DenoisingContext.LatentsKey && old is not null) old.Dispose();
        }
    }
}
