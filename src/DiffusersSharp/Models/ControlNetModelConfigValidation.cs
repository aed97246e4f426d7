using R = DiffusersSharp.Models.ConfigRanges;

namespace DiffusersSharp.Models;

/// <summary>
/// Checks a <see cref="ControlNetModelConfig"/> before a model is built: a bad or unsupported value is a
/// <see cref="ConfigException"/> naming the file, the key and the value (diffusers' own messages where it has them).
/// </summary>
internal static class ControlNetModelConfigValidation
{
    /// <summary>
    /// The keys diffusers' <c>__init__</c> takes as one value or a list of one entry per down block (attention_head_dim as
    /// num_attention_heads' default, and indexed per block itself).
    /// </summary>
    internal static readonly string[] PerBlockKeys =
        ["only_cross_attention", "attention_head_dim", "num_attention_heads", "transformer_layers_per_block"];

    public static void Validate(ControlNetModelConfig c, string source)
    {
        R.List(source, "down_block_types", c.DownBlockTypes);
        R.List(source, "block_out_channels", c.BlockOutChannels);
        R.List(source, "conditioning_embedding_out_channels", c.ConditioningEmbeddingOutChannels);
        R.List(source, "only_cross_attention", c.OnlyCrossAttention);
        R.List(source, "attention_head_dim", c.AttentionHeadDim);
        R.List(source, "transformer_layers_per_block", c.TransformerLayersPerBlock);
        R.NotNull(source, "act_fn", c.ActFn);
        R.NotNull(source, "resnet_time_scale_shift", c.ResnetTimeScaleShift);
        R.NotNull(source, "controlnet_conditioning_channel_order", c.ControlnetConditioningChannelOrder);
        R.AllFinite(c, source);

        int n = c.DownBlockTypes.Length;
        if (c.BlockOutChannels.Length != n)
            R.Fail(source, "block_out_channels", $"Must provide the same number of `block_out_channels` as `down_block_types`. `block_out_channels`: [{Ints(c.BlockOutChannels)}]. `down_block_types`: [{string.Join(", ", c.DownBlockTypes)}].");
        PerBlock(source, "only_cross_attention", c.OnlyCrossAttention.Length, n);
        PerBlock(source, "attention_head_dim", c.AttentionHeadDim.Length, n);
        UNet2DConditionModelConfigValidation.OneListEntry(source, c.TransformerLayersPerBlock, n);
        PerBlockDepths.CheckLength(source, c.TransformerLayersPerBlock, n);
        if (c.NumAttentionHeads is { } nah) PerBlock(source, "num_attention_heads", nah.Length, n);

        R.Int(source, "in_channels", c.InChannels, 1, R.MaxChannels);
        R.Int(source, "conditioning_channels", c.ConditioningChannels, 1, R.MaxChannels);
        R.Ints(source, "block_out_channels", c.BlockOutChannels, 1, R.MaxChannels);
        R.Ints(source, "conditioning_embedding_out_channels", c.ConditioningEmbeddingOutChannels, 1, R.MaxChannels);
        R.Int(source, "layers_per_block", c.LayersPerBlock, 1, R.MaxLayersPerBlock);
        ModelConfigRanges.Depths(source, "transformer_layers_per_block", c.TransformerLayersPerBlock);
        R.Int(source, "cross_attention_dim", c.CrossAttentionDim, 1, R.MaxChannels);
        R.Ints(source, "attention_head_dim", c.AttentionHeadDim, 1, R.MaxChannels);
        if (c.NumAttentionHeads is { } heads) R.Ints(source, "num_attention_heads", heads, 1, R.MaxChannels);
        R.Int(source, "norm_num_groups", c.NormNumGroups ?? 0, 1, R.MaxChannels);
        R.Positive(source, "norm_eps", c.NormEps, 1);
        R.NonZero(source, "mid_block_scale_factor", c.MidBlockScaleFactor);
        R.DownsamplePadding(source, c.DownsamplePadding);
        if (c.FreqShift < 0 || c.FreqShift >= c.BlockOutChannels[0] / 2)
            R.Fail(source, "freq_shift", $"freq_shift must be between 0 and half the time projection's {c.BlockOutChannels[0]} channels minus 1, got {c.FreqShift}");

        for (int i = 0; i < n; i++)
        {
            string type = c.DownBlockTypes[i];
            if (!UNet2DBlocks.IsDownBlock(type))
                R.Fail(source, "down_block_types", $"unknown or unsupported down block type '{type}' at index {i} (supported: {string.Join(", ", UNet2DBlocks.DownBlockTypes())})");
            int channels = c.BlockOutChannels[i];
            if (channels % c.NormNumGroups!.Value != 0)
                R.Fail(source, "block_out_channels", $"block_out_channels value {channels} is not divisible by norm_num_groups {c.NormNumGroups}");
            int h = At(c.NumAttentionHeads ?? c.AttentionHeadDim, i);
            if (UNet2DBlocks.NeedsCrossAttention(type) && channels % h != 0)
                R.Fail(source, c.NumAttentionHeads is null ? "attention_head_dim" : "num_attention_heads",
                    $"block {i}: {channels} channels cannot be split into {h} attention heads");
        }
        PerLayerDepths(c, source, n);
        if (c.MidBlockType is not ("UNetMidBlock2DCrossAttn" or "UNetMidBlock2D"))
            R.Fail(source, "mid_block_type", $"unknown mid_block_type : {c.MidBlockType ?? "None"} (ControlNetModel takes UNetMidBlock2DCrossAttn or UNetMidBlock2D)");
        if (c.MidBlockType == "UNetMidBlock2DCrossAttn" && c.BlockOutChannels[^1] % At(c.NumAttentionHeads ?? c.AttentionHeadDim, n - 1) != 0)
            R.Fail(source, "attention_head_dim", $"mid block: {c.BlockOutChannels[^1]} channels cannot be split into {At(c.NumAttentionHeads ?? c.AttentionHeadDim, n - 1)} attention heads");

        if (c.ControlnetConditioningChannelOrder is not ("rgb" or "bgr"))
            R.Fail(source, "controlnet_conditioning_channel_order", $"unknown `controlnet_conditioning_channel_order`: {c.ControlnetConditioningChannelOrder}");
        // diffusers' ControlNetModel (0.25.1 up to 0.40) builds no class embedding for any other name, the
        // UNet's "simple_projection" (AudioLDM's FiLM conditioning) included, and then drops class_labels without a word
        if (c.ClassEmbedType is not (null or "timestep" or "identity" or "projection"))
            R.Fail(source, "class_embed_type",
                $"class_embed_type '{c.ClassEmbedType}' is not one ControlNetModel builds (null, timestep, identity or projection); " +
                "diffusers' ControlNetModel builds no class embedding for it and ignores class_labels");
        if (c.ClassEmbedType == "projection" && c.ProjectionClassEmbeddingsInputDim is null)
            R.Fail(source, "projection_class_embeddings_input_dim", "`class_embed_type`: 'projection' requires `projection_class_embeddings_input_dim` be set");
        if (c.NumClassEmbeds is int nce) R.Int(source, "num_class_embeds", nce, 1, R.MaxClassEmbeds);
        if (c.AdditionEmbedType is not (null or "text_time"))
            R.Fail(source, "addition_embed_type", $"addition_embed_type '{c.AdditionEmbedType}' is not supported by DiffusersSharp (supported: null, text_time)");
        if (c.AdditionEmbedType == "text_time")
        {
            if (c.AdditionTimeEmbedDim is not int atd)
                R.Fail(source, "addition_time_embed_dim", "`addition_embed_type`: 'text_time' requires `addition_time_embed_dim` be set");
            else R.Int(source, "addition_time_embed_dim", atd, 2, R.MaxChannels);
            if (c.ProjectionClassEmbeddingsInputDim is null)
                R.Fail(source, "projection_class_embeddings_input_dim", "`addition_embed_type`: 'text_time' requires `projection_class_embeddings_input_dim` be set");
        }
        if (c.ProjectionClassEmbeddingsInputDim is int pci) R.Int(source, "projection_class_embeddings_input_dim", pci, 1, R.MaxChannels);
        if (c.EncoderHidDim is null && c.EncoderHidDimType is not null)
            R.Fail(source, "encoder_hid_dim", $"`encoder_hid_dim` has to be defined when `encoder_hid_dim_type` is set to {c.EncoderHidDimType}.");
        if (c.EncoderHidDimType is not (null or "text_proj"))
            R.Fail(source, "encoder_hid_dim_type", $"encoder_hid_dim_type '{c.EncoderHidDimType}' is not supported by DiffusersSharp (supported: null, text_proj)");
        if (c.EncoderHidDim is int ehd) R.Int(source, "encoder_hid_dim", ehd, 1, R.MaxChannels);
        if (c.ResnetTimeScaleShift is not ("default" or "scale_shift"))
            R.Fail(source, "resnet_time_scale_shift", $"unsupported resnet_time_scale_shift '{c.ResnetTimeScaleShift}' (expected default or scale_shift)");
        if (c.ActFn.ToLowerInvariant() is not ("swish" or "silu" or "mish" or "gelu" or "relu"))
            R.Fail(source, "act_fn", $"Unsupported activation function: {c.ActFn}");
    }

    /// <summary>
    /// A list entry of transformer_layers_per_block gives a depth per attention layer of its cross-attention down block
    /// (layers_per_block of them) and, the last entry, of the cross-attention mid block (its one layer), as in the UNet.
    /// </summary>
    private static void PerLayerDepths(ControlNetModelConfig c, string source, int n)
    {
        for (int i = 0; i < n; i++)
            if (UNet2DBlocks.NeedsCrossAttention(c.DownBlockTypes[i]))
                UNet2DConditionModelConfigValidation.EnoughDepths(source, "transformer_layers_per_block", $"down block {i} ({c.DownBlockTypes[i]})",
                    PerBlockDepths.Down(c.TransformerLayersPerBlock, i), c.LayersPerBlock);
        if (c.MidBlockType == "UNetMidBlock2DCrossAttn")
            UNet2DConditionModelConfigValidation.EnoughDepths(source, "transformer_layers_per_block", $"the mid block ({c.MidBlockType})",
                PerBlockDepths.Mid(c.TransformerLayersPerBlock), 1);
    }

    /// <summary>Value of block <paramref name="i"/> of a per-block list of length 1 (every block) or N.</summary>
    internal static T At<T>(T[] values, int i) => values.Length == 1 ? values[0] : values[i];

    private static void PerBlock(string source, string key, int length, int n)
    {
        if (length != 1 && length != n)
            R.Fail(source, key, $"Must provide the same number of `{key}` as `down_block_types`. `{key}` has {length} values, `down_block_types` {n} blocks.");
    }

    private static string Ints(int[] s) => string.Join(", ", s);
}
