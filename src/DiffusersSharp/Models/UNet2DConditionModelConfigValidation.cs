using static DiffusersSharp.Models.ConfigRanges;

namespace DiffusersSharp.Models;

/// <summary>
/// Checks a <see cref="UNet2DConditionModelConfig"/> before a model is built, so that a bad or unsupported
/// value is a <see cref="ConfigException"/> naming the file, the key and the value (diffusers' own messages
/// where it has them).
/// </summary>
internal static class UNet2DConditionModelConfigValidation
{
    /// <summary>The keys diffusers' <c>__init__</c> takes as one value or a list of one entry per down block.</summary>
    internal static readonly string[] PerBlockKeys =
        ["only_cross_attention", "attention_head_dim", "cross_attention_dim", "layers_per_block", "transformer_layers_per_block"];

    public static void Validate(UNet2DConditionModelConfig c, string source)
    {
        ModelConfigRanges.RequiredUNet2DCondition(c, source);
        int n = c.DownBlockTypes?.Length ?? 0;
        if (c.DownBlockTypes is null || n == 0)
            Fail(source, "down_block_types", "down_block_types must be a non-empty list");
        if (c.UpBlockTypes is null)
            Fail(source, "up_block_types", "up_block_types must be a list");
        if (c.BlockOutChannels is null)
            Fail(source, "block_out_channels", "block_out_channels must be a list");
        if (c.NumAttentionHeads is not null)
            Fail(source, "num_attention_heads", "At the moment it is not possible to define the number of attention heads via `num_attention_heads` because of a naming issue as described in https://github.com/huggingface/diffusers/issues/2011#issuecomment-1547958131. Passing `num_attention_heads` will only be supported in diffusers v0.19.");
        if (c.DownBlockTypes!.Length != c.UpBlockTypes!.Length)
            Fail(source, "up_block_types", $"Must provide the same number of `down_block_types` as `up_block_types`. `down_block_types`: [{Join(c.DownBlockTypes)}]. `up_block_types`: [{Join(c.UpBlockTypes)}].");
        if (c.BlockOutChannels!.Length != n)
            Fail(source, "block_out_channels", $"Must provide the same number of `block_out_channels` as `down_block_types`. `block_out_channels`: [{Ints(c.BlockOutChannels)}]. `down_block_types`: [{Join(c.DownBlockTypes)}].");
        PerBlock(source, "only_cross_attention", c.OnlyCrossAttention?.Length, n, c.OnlyCrossAttention is null ? "null" : string.Join(", ", c.OnlyCrossAttention));
        PerBlock(source, "attention_head_dim", c.AttentionHeadDim?.Length, n, c.AttentionHeadDim is null ? "null" : Ints(c.AttentionHeadDim));
        PerBlock(source, "cross_attention_dim", c.CrossAttentionDim?.Length, n, c.CrossAttentionDim is null ? "null" : Ints(c.CrossAttentionDim));
        PerBlock(source, "layers_per_block", c.LayersPerBlock?.Length, n, c.LayersPerBlock is null ? "null" : Ints(c.LayersPerBlock));
        if (c.TransformerLayersPerBlock is null)
            Fail(source, "transformer_layers_per_block", "transformer_layers_per_block must not be null");
        OneListEntry(source, c.TransformerLayersPerBlock!, n);
        PerBlockDepths.CheckLength(source, c.TransformerLayersPerBlock!, n);
        if (c.ReverseTransformerLayersPerBlock is null && c.TransformerLayersPerBlock!.Any(d => d.IsPerLayer))
            Fail(source, "reverse_transformer_layers_per_block", "Must provide 'reverse_transformer_layers_per_block` if using asymmetrical UNet.");
        // diffusers indexes it per up block (a longer list is read as far as it goes)
        if (c.ReverseTransformerLayersPerBlock is { } rev && rev.Length < n)
            Fail(source, "reverse_transformer_layers_per_block", $"needs an entry per up block ({n}), got {rev.Length}: [{string.Join(", ", rev)}]");

        for (int i = 0; i < n; i++)
        {
            if (!UNet2DBlocks.IsDownBlock(c.DownBlockTypes[i]))
                Fail(source, "down_block_types", $"unknown or unsupported down block type '{c.DownBlockTypes[i]}' at index {i} (supported: {string.Join(", ", UNet2DBlocks.DownBlockTypes())})");
            if (!UNet2DBlocks.IsUpBlock(c.UpBlockTypes[i]))
                Fail(source, "up_block_types", $"unknown or unsupported up block type '{c.UpBlockTypes[i]}' at index {i} (supported: {string.Join(", ", UNet2DBlocks.UpBlockTypes())})");
        }
        if (c.MidBlockType is not null && !UNet2DBlocks.IsMidBlock(c.MidBlockType))
            Fail(source, "mid_block_type", $"unknown or unsupported mid_block_type '{c.MidBlockType}' (supported: {string.Join(", ", UNet2DBlocks.MidBlockTypes)}, null)");
        if (c.NormNumGroups is not null || !OnlyOwnNormGroups(c))
            NormGroups(source, c.NormNumGroups, c.BlockOutChannels);
        for (int i = 0; i < n; i++)
        {
            int heads = At(c.AttentionHeadDim!, i);
            if (heads <= 0)
                Fail(source, "attention_head_dim", $"attention_head_dim must be positive, got {heads} for block {i}");
            bool crossBlock = UNet2DBlocks.NeedsCrossAttention(c.DownBlockTypes[i]) || UNet2DBlocks.NeedsCrossAttention(c.UpBlockTypes[n - 1 - i]);
            if (crossBlock && c.BlockOutChannels[i] % heads != 0)
                Fail(source, "attention_head_dim", $"block {i}: {c.BlockOutChannels[i]} channels cannot be split into {heads} attention heads (attention_head_dim is the number of heads here)");
            if (At(c.LayersPerBlock!, i) <= 0)
                Fail(source, "layers_per_block", $"layers_per_block must be positive, got {At(c.LayersPerBlock!, i)} for block {i}");
            if (At(c.CrossAttentionDim!, i) <= 0)
                Fail(source, "cross_attention_dim", $"cross_attention_dim must be positive, got {At(c.CrossAttentionDim!, i)} for block {i}");
        }
        PerLayerDepths(c, source, n);
        if (c.MidBlockType is not null && UNet2DBlocks.NeedsCrossAttention(c.MidBlockType) && c.BlockOutChannels[^1] % At(c.AttentionHeadDim!, n - 1) != 0)
            Fail(source, "attention_head_dim", $"mid block: {c.BlockOutChannels[^1]} channels cannot be split into {At(c.AttentionHeadDim!, n - 1)} attention heads");
        if (c.TimeEmbeddingType is not ("positional" or "fourier"))
            Fail(source, "time_embedding_type", $"{c.TimeEmbeddingType} does not exist. Please make sure to use one of `fourier` or `positional`.");
        if (c.TimeEmbeddingType == "fourier" && (c.TimeEmbeddingDim ?? c.BlockOutChannels[0] * 2) % 2 != 0)
            Fail(source, "time_embedding_dim", $"`time_embed_dim` should be divisible by 2, but is {c.TimeEmbeddingDim}.");
        if (c.ClassEmbedType is not (null or "timestep" or "identity" or "projection" or "simple_projection"))
            Fail(source, "class_embed_type", $"unknown class_embed_type '{c.ClassEmbedType}' (expected null, timestep, identity, projection or simple_projection)");
        if (c.ClassEmbedType is "projection" or "simple_projection" && c.ProjectionClassEmbeddingsInputDim is null)
            Fail(source, "projection_class_embeddings_input_dim", $"`class_embed_type`: '{c.ClassEmbedType}' requires `projection_class_embeddings_input_dim` be set");
        if (c.AdditionEmbedType is not (null or "text_time"))
            Fail(source, "addition_embed_type", $"addition_embed_type '{c.AdditionEmbedType}' is not supported by DiffusersSharp (supported: null, text_time)");
        if (c.AdditionEmbedType == "text_time" && c.AdditionTimeEmbedDim is null)
            Fail(source, "addition_time_embed_dim", "`addition_embed_type`: 'text_time' requires `addition_time_embed_dim` be set");
        if (c.AdditionEmbedType == "text_time" && c.ProjectionClassEmbeddingsInputDim is null)
            Fail(source, "projection_class_embeddings_input_dim", "`addition_embed_type`: 'text_time' requires `projection_class_embeddings_input_dim` be set");
        if (c.EncoderHidDimType is null && c.EncoderHidDim is not null && c.CrossAttentionDim!.Length != 1)
            Fail(source, "cross_attention_dim", "encoder_hid_dim needs a single cross_attention_dim");
        if (c.EncoderHidDim is null && c.EncoderHidDimType is not null)
            Fail(source, "encoder_hid_dim", $"`encoder_hid_dim` has to be defined when `encoder_hid_dim_type` is set to {c.EncoderHidDimType}.");
        if (c.EncoderHidDimType is not (null or "text_proj"))
            Fail(source, "encoder_hid_dim_type", $"encoder_hid_dim_type '{c.EncoderHidDimType}' is not supported by DiffusersSharp (supported: null, text_proj)");
        if (c.DualCrossAttention)
            Fail(source, "dual_cross_attention", "dual_cross_attention is not supported by DiffusersSharp");
        if (c.AttentionType != "default")
            Fail(source, "attention_type", $"attention_type '{c.AttentionType}' is not supported by DiffusersSharp (supported: default)");
        if (c.ResnetTimeScaleShift is not ("default" or "scale_shift"))
            Fail(source, "resnet_time_scale_shift", $"unsupported resnet_time_scale_shift '{c.ResnetTimeScaleShift}' (expected default or scale_shift)");
        foreach (var (key, fn) in new[] { ("act_fn", c.ActFn), ("time_embedding_act_fn", c.TimeEmbeddingActFn), ("timestep_post_act", c.TimestepPostAct) })
            if (fn is not null && fn.ToLowerInvariant() is not ("swish" or "silu" or "mish" or "gelu" or "relu"))
                Fail(source, key, $"Unsupported activation function: {fn}");
        if (c.ActFn is null)
            Fail(source, "act_fn", "act_fn must not be null");
        if (c.InChannels <= 0 || c.OutChannels <= 0)
            Fail(source, c.InChannels <= 0 ? "in_channels" : "out_channels", $"channel counts must be positive, got in_channels {c.InChannels}, out_channels {c.OutChannels}");
        if (c.ConvInKernel <= 0 || c.ConvInKernel % 2 == 0)
            Fail(source, "conv_in_kernel", $"conv_in_kernel must be a positive odd number, got {c.ConvInKernel}");
        if (c.ConvOutKernel <= 0 || c.ConvOutKernel % 2 == 0)
            Fail(source, "conv_out_kernel", $"conv_out_kernel must be a positive odd number, got {c.ConvOutKernel}");
        ModelConfigRanges.UNet2DCondition(c, source);
    }

    /// <summary>
    /// The cross-attention blocks read a list entry of transformer_layers_per_block (reverse_… for the up blocks) one
    /// depth per layer (diffusers' CrossAttnDownBlock2D / CrossAttnUpBlock2D / UNetMidBlock2DCrossAttn index it for each of
    /// their num_layers: a shorter list is an IndexError there); the other blocks ignore their entry. Each block's entry
    /// is the one diffusers gives it (<see cref="PerBlockDepths"/>).
    /// </summary>
    private static void PerLayerDepths(UNet2DConditionModelConfig c, string source, int n)
    {
        var rev = c.ReverseTransformerLayersPerBlock;
        for (int i = 0; i < n; i++)
        {
            if (UNet2DBlocks.NeedsCrossAttention(c.DownBlockTypes[i]))
                EnoughDepths(source, "transformer_layers_per_block", $"down block {i} ({c.DownBlockTypes[i]})",
                    PerBlockDepths.Down(c.TransformerLayersPerBlock, i), At(c.LayersPerBlock, i));
            if (UNet2DBlocks.NeedsCrossAttention(c.UpBlockTypes[i]))
                EnoughDepths(source, rev is null ? "transformer_layers_per_block" : "reverse_transformer_layers_per_block",
                    $"up block {i} ({c.UpBlockTypes[i]})", PerBlockDepths.Up(c.TransformerLayersPerBlock, rev, i), At(c.LayersPerBlock, n - 1 - i) + 1);
        }
        if (c.MidBlockType is { } mid && UNet2DBlocks.NeedsCrossAttention(mid))
            EnoughDepths(source, "transformer_layers_per_block", $"the mid block ({mid})", PerBlockDepths.Mid(c.TransformerLayersPerBlock), 1);
    }

    /// <summary>
    /// A one-element <c>transformer_layers_per_block</c> holding a list entry (the depths of one block's layers) for several
    /// down blocks: the file form of it is a one-entry list, which diffusers indexes per down block (an IndexError);
    /// only an int entry alone is for every block.
    /// </summary>
    internal static void OneListEntry(string source, TransformerDepth[] depths, int n)
    {
        if (depths is [{ IsPerLayer: true } only] && n != 1)
            Fail(source, "transformer_layers_per_block", $"Must provide the same number of `transformer_layers_per_block` as `down_block_types`. `transformer_layers_per_block`: [{only}], a list of 1 entry. `down_block_types`: {n} blocks. A list needs an entry per down block; only a bare value is for every block.");
    }

    internal static void EnoughDepths(string source, string key, string block, TransformerDepth entry, int layers)
    {
        if (entry.IsPerLayer && entry.Depths.Length < layers)
            Fail(source, key, $"{block} has {layers} attention layer{(layers == 1 ? "" : "s")}, but its list entry {entry} gives {entry.Depths.Length} depth{(entry.Depths.Length == 1 ? "" : "s")}: a list entry needs one per layer");
    }

    /// <summary>
    /// Every block builds its norms without <c>resnet_groups</c> (<see cref="UNet2DBlocks.OwnsNormGroups"/>) and there is
    /// no mid block: <c>norm_num_groups</c> may then be null (no <c>conv_norm_out</c>), as diffusers builds the K UNets.
    /// </summary>
    private static bool OnlyOwnNormGroups(UNet2DConditionModelConfig c) =>
        c.MidBlockType is null && c.DownBlockTypes.All(UNet2DBlocks.OwnsNormGroups) && c.UpBlockTypes.All(UNet2DBlocks.OwnsNormGroups);

    /// <summary>Value of block <paramref name="i"/> of a per-block list of length 1 (every block) or N.</summary>
    internal static T At<T>(T[] values, int i) => values.Length == 1 ? values[0] : values[i];

    private static void PerBlock(string source, string key, int? length, int n, string value)
    {
        if (length is null)
            Fail(source, key, $"{key} must not be null");
        if (length != 1 && length != n)
            Fail(source, key, $"Must provide the same number of `{key}` as `down_block_types`. `{key}`: [{value}]. `down_block_types`: {n} blocks.");
    }

    private static string Join(string[] s) => string.Join(", ", s.Select(x => $"'{x}'"));
    private static string Ints(int[] s) => string.Join(", ", s);
}
