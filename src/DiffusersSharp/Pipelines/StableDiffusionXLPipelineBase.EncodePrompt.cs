using DiffusersSharp.Models;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionXLPipelineBase
{
    /// <summary>
    /// diffusers' SDXL <c>encode_prompt</c>: <paramref name="prompt"/> through <c>tokenizer</c> / <c>text_encoder</c> and
    /// <paramref name="prompt2"/> (default: the prompt) through <c>tokenizer_2</c> / <c>text_encoder_2</c>, no attention
    /// mask, each giving <c>hidden_states[-2]</c> (with <paramref name="clipSkip"/> k: <c>hidden_states[-(k + 2)]</c>, not
    /// final-layer-normed), concatenated on the feature axis; the pooled embedding is <c>text_encoder_2</c>'s
    /// <c>text_embeds</c>. A refiner (no <c>text_encoder</c>) encodes only <paramref name="prompt"/> with the second
    /// encoder. With guidance and no <paramref name="negativePrompt"/>, <see cref="ForceZerosForEmptyPrompt"/> makes the
    /// negative embeddings zeros; otherwise <c>negative_prompt or ""</c> / <c>negative_prompt_2 or negative_prompt</c>
    /// are encoded the same way, always with <c>hidden_states[-2]</c> (diffusers ignores clip_skip there). Rows are
    /// repeated <paramref name="numImagesPerPrompt"/> times, prompt-major. <paramref name="loraScale"/> (diffusers'
    /// <c>lora_scale</c>): the scale of both text encoders' LoRA layers, kept for later calls as diffusers 0.25.1 keeps it.
    /// </summary>
    public StableDiffusionXLPromptEmbeddings EncodePrompt(PromptInput prompt, PromptInput prompt2 = default, int numImagesPerPrompt = 1,
        bool doClassifierFreeGuidance = true, PromptInput negativePrompt = default, PromptInput negativePrompt2 = default,
        Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null, Tensor? pooledPromptEmbeds = null,
        Tensor? negativePooledPromptEmbeds = null, int? clipSkip = null, double? loraScale = null)
    {
        // diffusers: both text encoders' LoRA layers take the call's scale and keep it for later calls (0.25.1)
        if (loraScale is double ls)
        {
            if (TextEncoder is not null) TextEncoder.LoraScale.Value = ls;
            TextEncoder2.LoraScale.Value = ls;
        }
        if (numImagesPerPrompt < 1)
            throw new DiffusersException($"{ClassName}: num_images_per_prompt must be at least 1, got {numImagesPerPrompt}");
        if (prompt.IsNone && promptEmbeds is null)
            throw new DiffusersException($"{ClassName}: provide either a prompt or prompt_embeds; both are missing");
        if (promptEmbeds is not null && pooledPromptEmbeds is null)
            throw new DiffusersException(
                $"{ClassName}: if prompt_embeds are provided, pooled_prompt_embeds also have to be passed (generated from the same text encoder)");
        if (negativePromptEmbeds is not null && negativePooledPromptEmbeds is null)
            throw new DiffusersException(
                $"{ClassName}: if negative_prompt_embeds are provided, negative_pooled_prompt_embeds also have to be passed (generated from the same text encoder)");
        var encoders = Encoders();
        if (clipSkip is int cs)
            foreach (int layers in encoders.Select(e => e.Layers))
                if (cs < 0 || cs > layers - 1)
                    throw new DiffusersException(
                        $"{ClassName}: clip_skip must be between 0 and {layers - 1} (the text encoder has {layers} layers), got {cs}");

        var device = Unet.Device;
        // the embeddings feed the UNet: its dtype (diffusers: text_encoder_2's; the same unless the text encoders were kept in
        // fp32 under bf16, StableDiffusionPipelineBase.TextEncoderDtype); the pooled embeddings too (the UNet's text_embeds)
        var dtype = Unet.DType;
        int batchSize = prompt.IsNone ? (int)promptEmbeds!.shape[0] : prompt.Items.Count;

        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        Tensor embeds, pooled;
        if (promptEmbeds is null)
        {
            var second = IsFalsy(prompt2) ? prompt : prompt2;
            // the second encoder's rows are concatenated with the first's (a refiner encodes only the prompt)
            if (encoders.Count == 2 && second.Items.Count != batchSize)
                throw new DiffusersException(
                    $"{ClassName}: prompt_2 {prompt2} has batch size {second.Items.Count}, but prompt {prompt} has batch size {batchSize}");
            IReadOnlyList<string>[] texts = [prompt.Items, second.Items];
            (embeds, pooled) = EncodeWithBoth(encoders, texts, clipSkip, warn: true);
        }
        else
        {
            PipelineSteps.CheckPromptEmbeds(ClassName, promptEmbeds, (TextEncoder?.Config.HiddenSize ?? 0) + TextEncoder2.Config.HiddenSize,
                TextEncoder is null ? "text_encoder_2's hidden_size" : "the text encoders' hidden sizes added");
            int projection = TextEncoder2.Config.ProjectionDim;
            if (!pooledPromptEmbeds!.shape.SequenceEqual([batchSize, projection]))
                throw new DiffusersException(
                    $"{ClassName}: pooled_prompt_embeds have shape [{string.Join(", ", pooledPromptEmbeds.shape)}], but must be [{batchSize}, {projection}] " +
                    "(a row per row of prompt_embeds, text_encoder_2's projection_dim)");
            embeds = promptEmbeds;
            pooled = pooledPromptEmbeds;
        }

        Tensor? negative = null, negativePooled = null;
        bool zeroOut = negativePrompt.IsNone && ForceZerosForEmptyPrompt;
        if (doClassifierFreeGuidance && negativePromptEmbeds is null && zeroOut)
        {
            negative = torch.zeros_like(embeds);
            negativePooled = torch.zeros_like(pooled);
        }
        else if (doClassifierFreeGuidance && negativePromptEmbeds is null)
        {
            var first = IsFalsy(negativePrompt) ? (PromptInput)"" : negativePrompt;
            var second = IsFalsy(negativePrompt2) ? first : negativePrompt2;
            var uncond1 = Broadcast(first, batchSize);
            var uncond2 = Broadcast(second, batchSize);
            if (uncond1.Count != batchSize)
                throw new DiffusersException(
                    $"{ClassName}: negative_prompt {negativePrompt} has batch size {uncond1.Count}, but prompt {prompt} has batch size {batchSize}");
            if (encoders.Count == 2 && uncond2.Count != batchSize)
                throw new DiffusersException(
                    $"{ClassName}: negative_prompt_2 {negativePrompt2} has batch size {uncond2.Count}, but prompt {prompt} has batch size {batchSize}");
            (negative, negativePooled) = EncodeWithBoth(encoders, [uncond1, uncond2], clipSkip: null, warn: false, maxLength: (int)embeds.shape[1]);
        }
        else if (doClassifierFreeGuidance)
        {
            PipelineSteps.CheckNegativeEmbeds(ClassName, "negative_prompt_embeds", negativePromptEmbeds!, embeds.shape);
            PipelineSteps.CheckNegativeEmbeds(ClassName, "negative_pooled_prompt_embeds", negativePooledPromptEmbeds!, pooled.shape);
            negative = negativePromptEmbeds;
            negativePooled = negativePooledPromptEmbeds;
        }

        embeds = Repeat(embeds.to(dtype, device), numImagesPerPrompt);
        pooled = Repeat(pooled.to(dtype, device), numImagesPerPrompt);
        if (doClassifierFreeGuidance)
        {
            negative = Repeat(negative!.to(dtype, device), numImagesPerPrompt);
            negativePooled = Repeat(negativePooled!.to(dtype, device), numImagesPerPrompt);
        }
        return new StableDiffusionXLPromptEmbeddings(embeds.contiguous().MoveToOuterDisposeScope(),
            negative?.contiguous().MoveToOuterDisposeScope(), pooled.contiguous().MoveToOuterDisposeScope(),
            negativePooled?.contiguous().MoveToOuterDisposeScope());
    }

    /// <summary>The tokenizer / text encoder pairs in diffusers' order (the refiner has only the second).</summary>
    private List<(CLIPTokenizer Tokenizer, int Layers, Func<Tensor, (Tensor Pooled, IReadOnlyList<Tensor> Hidden, IDisposable Output)> Run)> Encoders()
    {
        var list = new List<(CLIPTokenizer, int, Func<Tensor, (Tensor, IReadOnlyList<Tensor>, IDisposable)>)>();
        if (TextEncoder is not null)
            list.Add((Tokenizer!, TextEncoder.Config.NumHiddenLayers, RunFirst));
        list.Add((Tokenizer2, TextEncoder2.Config.NumHiddenLayers, RunSecond));
        return list;

        (Tensor, IReadOnlyList<Tensor>, IDisposable) RunFirst(Tensor ids)
        {
            var o = TextEncoder!.Forward(ids, null, outputHiddenStates: true);
            return (o.PoolerOutput, o.HiddenStates!, o);
        }

        (Tensor, IReadOnlyList<Tensor>, IDisposable) RunSecond(Tensor ids)
        {
            var o = TextEncoder2.Forward(ids, null, outputHiddenStates: true);
            return (o.TextEmbeds, o.HiddenStates!, o);
        }
    }

    /// <summary>
    /// Runs <paramref name="texts"/>[i] through encoder i (a refiner has one encoder and takes the first text), returns the
    /// concatenated chosen hidden states and the last encoder's pooled output. Each text first goes through diffusers'
    /// <c>maybe_convert_prompt</c> with its own tokenizer (textual inversion's multi-vector tokens).
    /// </summary>
    private (Tensor Embeds, Tensor Pooled) EncodeWithBoth(
        List<(CLIPTokenizer Tokenizer, int Layers, Func<Tensor, (Tensor Pooled, IReadOnlyList<Tensor> Hidden, IDisposable Output)> Run)> encoders,
        IReadOnlyList<string>[] texts, int? clipSkip, bool warn, int? maxLength = null)
    {
        var parts = new List<Tensor>();
        Tensor pooled = null!;
        for (int i = 0; i < encoders.Count; i++)
        {
            var (tokenizer, _, run) = encoders[i];
            var converted = TextualInversion.MaybeConvertPrompt(texts[i], tokenizer);
            var tokens = tokenizer.Call(converted, PaddingStrategy.MaxLength, maxLength ?? tokenizer.ModelMaxLength, truncation: true);
            if (warn) foreach (var w in tokens.Warnings) Log(w);
            var ids = tokens.InputIdsTensor(Unet.Device);
            var (p, hidden, output) = run(ids);
            using (output)
            {
                parts.Add(hidden[hidden.Count - ((clipSkip ?? 0) + 2)].alias());
                pooled = p.alias();
            }
        }
        return (torch.cat(parts, -1), pooled);
    }

    /// <summary>Python's truthiness of a prompt argument: None, "" and [] are false.</summary>
    private static bool IsFalsy(PromptInput p) => p.IsNone || (p.IsList ? p.Items.Count == 0 : p.Items[0].Length == 0);

    /// <summary>A string becomes <paramref name="batch"/> copies; a list stays as it is.</summary>
    private static IReadOnlyList<string> Broadcast(PromptInput p, int batch) =>
        p.IsList ? p.Items : Enumerable.Repeat(p.Items[0], batch).ToArray();

    /// <summary>Each row repeated <paramref name="n"/> times in place (prompt-major), as diffusers' repeat + view.</summary>
    private static Tensor Repeat(Tensor t, int n) => n == 1 ? t : t.repeat_interleave(n, 0);
}
