using System.Text.Json;
using DiffusersSharp.Loading;
using DiffusersSharp.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// transformers' <c>CLIPTextTransformer</c> (the <c>text_model</c> of <see cref="CLIPTextModel"/>): embeddings,
/// causal self-attention layers, final LayerNorm and the pooled output at the EOS position.
/// </summary>
internal sealed class CLIPTextTransformer : nn.Module
{
    private readonly CLIPTextEmbeddings embeddings;
    private readonly CLIPEncoder encoder;
    private readonly LayerNorm final_layer_norm;
    private readonly CLIPTextConfig _config;

    public CLIPTextTransformer(CLIPTextConfig config) : base(nameof(CLIPTextTransformer))
    {
        _config = config;
        embeddings = new CLIPTextEmbeddings(config);
        encoder = new CLIPEncoder(CLIPEncoderShape.Of(config));
        final_layer_norm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, dtype: Layers.BuildDType);
        RegisterComponents();
        _linears = new LinearWeightLayout(this);
    }

    // fp32 linear weights kept column-major on the CPU (MKL then packs no transposed weight per call)
    private readonly LinearWeightLayout _linears;

    /// <summary>
    /// transformers' non-persistent buffer, present in files written before 4.31: left out without a word, as transformers
    /// 4.36 takes the model's buffers out of the unexpected keys.
    /// </summary>
    public const string PositionIdsKey = "text_model.embeddings.position_ids";

    /// <summary>
    /// The <c>FromPretrained</c> of the CLIP text models: a transformers model folder (<see cref="CheckpointFormat.Transformers"/>:
    /// <c>config.json</c> + <c>model[.variant].safetensors</c>, else <c>pytorch_model[.variant].bin</c>, sharded or not)
    /// through <see cref="ModelLoading.FromPretrained{TConfig, TModel}(string, string?, LoadOptions?, Func{TConfig, string, TModel}, CheckpointFormat?, string?, Action{TModel, IDictionary{string, Tensor}}?)"/>;
    /// the config is validated naming its file. Tensors of the file that the model does not have (a full CLIPModel
    /// checkpoint's vision tower, <c>visual_projection</c>, <c>logit_scale</c>; <c>text_projection</c> for a
    /// <see cref="CLIPTextModel"/>) are left out, with the load's one warning to <see cref="LoadOptions.Log"/> when the
    /// config's <c>architectures</c> names the model's class, and without one otherwise: transformers 4.36's
    /// <c>from_pretrained</c> logs "Some weights of the model checkpoint at … were not used when initializing …" with
    /// <c>logger.warning</c> only in the first case, with <c>logger.info</c> (not shown by default) in the second.
    /// </summary>
    public static TModel FromPretrained<TModel>(string idOrPath, string? subfolder, LoadOptions? options, Func<CLIPTextConfig, TModel> create)
        where TModel : nn.Module
    {
        CLIPTextConfig? loaded = null;
        return ModuleScope.Run(() => ModelLoading.FromPretrained<CLIPTextConfig, TModel>(idOrPath, subfolder, options,
            (config, path) =>
            {
                config.Validate(path);
                loaded = config;
                return create(config);
            },
            CheckpointFormat.Transformers, prepareWeights: (model, weights) =>
            {
                weights.Remove(PositionIdsKey);
                if (!NamesArchitecture(loaded!, model)) DropUnexpected(model, weights);
            }));
    }

    /// <summary>Whether the config's <c>architectures</c> (transformers' <c>config.architectures</c>) lists the model's class.</summary>
    private static bool NamesArchitecture(CLIPTextConfig config, nn.Module model) =>
        config.Extra?.TryGetValue("architectures", out var archs) == true && archs.ValueKind == JsonValueKind.Array
        && archs.EnumerateArray().Any(a => a.ValueKind == JsonValueKind.String && a.GetString() == model.GetType().Name);

    /// <summary>Removes the tensors the model does not have (what transformers reports only at info level).</summary>
    private static void DropUnexpected(nn.Module model, IDictionary<string, Tensor> weights)
    {
        var own = model.named_parameters().Select(p => p.name).Concat(model.named_buffers().Select(b => b.name)).ToHashSet(StringComparer.Ordinal);
        foreach (var key in weights.Keys.Where(k => !own.Contains(k)).ToList())
            weights.Remove(key);
    }

    /// <summary>The token and position embeddings (<c>text_model.embeddings</c>).</summary>
    public CLIPTextEmbeddings Embeddings => embeddings;

    /// <summary>The final LayerNorm, which diffusers applies to <c>hidden_states[-(clip_skip + 1)]</c>.</summary>
    public Tensor FinalLayerNorm(Tensor x) => TorchUtils.Scoped(() => final_layer_norm.forward(x));

    public BaseModelOutputWithPooling Forward(Tensor inputIds, Tensor? attentionMask, bool outputHiddenStates)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        if (inputIds.dim() != 2)
            throw new ArgumentException($"input_ids must be [batch, sequence], got [{string.Join(", ", inputIds.shape)}]", nameof(inputIds));
        long b = inputIds.shape[0], s = inputIds.shape[1];
        // transformers fails on both inside torch: float ids in the embedding lookup, no token in the pooling's argmax
        if (inputIds.is_floating_point() || inputIds.is_complex() || inputIds.dtype == ScalarType.Bool)
            throw new ArgumentException($"input_ids must be integer token ids, got {inputIds.dtype}", nameof(inputIds));
        if (s == 0)
            throw new ArgumentException(
                "input_ids hold no token (shape [" + string.Join(", ", inputIds.shape) + "]); the pooled output is read at the end-of-text token: tokenize the prompt (an empty prompt gives BOS and EOS)",
                nameof(inputIds));
        if (s > _config.MaxPositionEmbeddings)
            throw new ArgumentException(
                $"input_ids has {s} tokens but the text encoder has {_config.MaxPositionEmbeddings} positions (max_position_embeddings); truncate the prompt",
                nameof(inputIds));
        if (attentionMask is not null && !attentionMask.shape.SequenceEqual(inputIds.shape))
            throw new ArgumentException(
                $"attention_mask [{string.Join(", ", attentionMask.shape)}] does not match input_ids [{string.Join(", ", inputIds.shape)}]",
                nameof(attentionMask));

        _linears.Follow();
        using var scope = torch.NewDisposeScope();
        var weight = embeddings.Weight;
        var ids = inputIds.to(ScalarType.Int64, weight.device);
        var h = EmbedTokens(ids);
        var mask = attentionMask is null ? null : BuildMask(attentionMask.to(weight.device), s, h.dtype);

        var hidden = outputHiddenStates ? new List<Tensor> { h } : null;
        foreach (var layer in encoder.Layers)
        {
            h = layer.Forward(h, mask);
            hidden?.Add(h);
        }
        var last = final_layer_norm.forward(h);

        // transformers 4.36: eos_token_id == 2 (configs from before PR #24773) pools at argmax(input_ids),
        // otherwise at the first position of eos_token_id.
        var eosIndex = _config.EosTokenId == 2
            ? ids.to(ScalarType.Int32).argmax(-1)
            : ids.to(ScalarType.Int32).eq(_config.EosTokenId!.Value).to(ScalarType.Int32).argmax(-1);
        var rows = torch.arange(b, dtype: ScalarType.Int64, device: last.device);
        var pooled = last.index(TensorIndex.Tensor(rows), TensorIndex.Tensor(eosIndex.to(ScalarType.Int64)));

        last.MoveToOuterDisposeScope();
        pooled.MoveToOuterDisposeScope();
        if (hidden is not null) foreach (var t in hidden) t.MoveToOuterDisposeScope();
        return new BaseModelOutputWithPooling(last, pooled, hidden);
    }

    /// <summary>
    /// The token and position embeddings. A token id outside the vocabulary fails in libtorch's lookup ("index out of
    /// range in self", as in transformers); on that failure only, the ids are read to name the offending ones.
    /// </summary>
    private Tensor EmbedTokens(Tensor ids) =>
        ModelInputs.Lookup(() => embeddings.Forward(ids), ids, embeddings.Weight.shape[0], "inputIds", outside =>
            $"input_ids hold token id{(outside.Length > 1 ? "s" : "")} {string.Join(", ", outside)}, outside the text encoder's vocabulary of " +
            $"{embeddings.Weight.shape[0]} tokens [0, vocab_size); was the prompt tokenized with this model's tokenizer?");

    // Causal mask plus the padding mask, both additive with finfo(dtype).min as transformers builds them.
    private static Tensor BuildMask(Tensor attentionMask, long s, ScalarType dtype)
    {
        // the Scalar held to the end (TorchSharp does not keep a Scalar argument alive during the native call)
        using var min = torch.finfo(dtype).min.ToScalar();
        var causal = torch.full(s, s, min, dtype: dtype, device: attentionMask.device).triu(1);
        var keep = attentionMask.to(dtype).unsqueeze(1).unsqueeze(1);           // [b,1,1,s]
        var padding = (1.0 - keep).masked_fill((1.0 - keep).to(ScalarType.Bool), min);
        return causal.unsqueeze(0).unsqueeze(0) + padding;                       // [b,1,s,s]
    }
}
