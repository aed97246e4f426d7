using R = DiffusersSharp.Models.ConfigRanges;

namespace DiffusersSharp.Models;

/// <summary>
/// The per-model range checks of <see cref="ConfigRanges"/>: <c>Required*</c> runs first in each config's validation
/// (lists and strings that must not be null), the rest last (ranges, finiteness, memory).
/// </summary>
internal static class ModelConfigRanges
{
    public static void RequiredUNet2D(UNet2DModelConfig c, string source)
    {
        R.List(source, "down_block_types", c.DownBlockTypes);
        R.List(source, "up_block_types", c.UpBlockTypes);
        R.List(source, "block_out_channels", c.BlockOutChannels);
        R.NotNull(source, "act_fn", c.ActFn);
        R.NotNull(source, "time_embedding_type", c.TimeEmbeddingType);
        R.NotNull(source, "resnet_time_scale_shift", c.ResnetTimeScaleShift);
        R.NotNull(source, "downsample_type", c.DownsampleType);
        R.NotNull(source, "upsample_type", c.UpsampleType);
    }

    public static void UNet2D(UNet2DModelConfig c, string source)
    {
        R.AllFinite(c, source);
        R.Int(source, "in_channels", c.InChannels, 1, R.MaxChannels);
        R.Int(source, "out_channels", c.OutChannels, 1, R.MaxChannels);
        R.Ints(source, "block_out_channels", c.BlockOutChannels, 1, R.MaxChannels);
        R.Int(source, "layers_per_block", c.LayersPerBlock, 1, R.MaxLayersPerBlock);
        R.Int(source, "norm_num_groups", c.NormNumGroups ?? 0, 1, R.MaxChannels);
        R.Positive(source, "norm_eps", c.NormEps, 1);
        R.Probability(source, "dropout", c.Dropout);
        R.NonZero(source, "mid_block_scale_factor", c.MidBlockScaleFactor);
        R.DownsamplePadding(source, c.DownsamplePadding);
        FreqShift(source, c.FreqShift, c.BlockOutChannels[0]);
        int last = c.BlockOutChannels[^1];
        if (c.AttnNormNumGroups is int ag && (ag <= 0 || last % ag != 0))
            R.Fail(source, "attn_norm_num_groups", $"attn_norm_num_groups must be a positive divisor of the mid block's {last} channels (block_out_channels[-1]), got {ag}");
        if (c.AttentionHeadDim is int hd)
        {
            for (int i = 0; i < c.BlockOutChannels.Length; i++)
                if ((c.DownBlockTypes[i].Contains("Attn", StringComparison.Ordinal) || c.UpBlockTypes[^(i + 1)].Contains("Attn", StringComparison.Ordinal))
                    && hd > c.BlockOutChannels[i])
                    R.Fail(source, "attention_head_dim", $"attention_head_dim {hd} is larger than the {c.BlockOutChannels[i]} channels of block {i}: its attention would have 0 heads");
            if (c.AddAttention && hd > last)
                R.Fail(source, "attention_head_dim", $"attention_head_dim {hd} is larger than the mid block's {last} channels: its attention would have 0 heads");
        }
        if (c.NumClassEmbeds is int nce) R.Int(source, "num_class_embeds", nce, 1, R.MaxClassEmbeds);
        if (c.NumTrainTimesteps is int ntt) R.Int(source, "num_train_timesteps", ntt, 1, R.MaxTrainTimesteps);
        R.SampleSize(source, c.SampleSize);
        ModelSize.Check(source, "UNet2DModel", ModelSize.UNet2D(c));
    }

    public static void RequiredUNet2DCondition(UNet2DConditionModelConfig c, string source)
    {
        R.List(source, "down_block_types", c.DownBlockTypes);
        R.List(source, "up_block_types", c.UpBlockTypes);
        R.List(source, "block_out_channels", c.BlockOutChannels);
        R.NotNull(source, "time_embedding_type", c.TimeEmbeddingType);
        R.NotNull(source, "resnet_time_scale_shift", c.ResnetTimeScaleShift);
        R.NotNull(source, "attention_type", c.AttentionType);
    }

    public static void UNet2DCondition(UNet2DConditionModelConfig c, string source)
    {
        R.AllFinite(c, source);
        int n = c.BlockOutChannels.Length;
        R.Int(source, "in_channels", c.InChannels, 1, R.MaxChannels);
        R.Int(source, "out_channels", c.OutChannels, 1, R.MaxChannels);
        R.Ints(source, "block_out_channels", c.BlockOutChannels, 1, R.MaxChannels);
        R.Ints(source, "layers_per_block", c.LayersPerBlock, 1, R.MaxLayersPerBlock);
        Depths(source, "transformer_layers_per_block", c.TransformerLayersPerBlock);
        Depths(source, "reverse_transformer_layers_per_block", c.ReverseTransformerLayersPerBlock ?? []);
        R.Ints(source, "cross_attention_dim", c.CrossAttentionDim, 1, R.MaxChannels);
        R.Ints(source, "attention_head_dim", c.AttentionHeadDim, 1, R.MaxChannels);
        for (int i = 0; i < n; i++)
        {
            int h = UNet2DConditionModelConfigValidation.At(c.AttentionHeadDim, i);
            if (h > c.BlockOutChannels[i])
                R.Fail(source, "attention_head_dim", $"attention_head_dim {h} is larger than the {c.BlockOutChannels[i]} channels of block {i}");
        }
        if (c.NormNumGroups is int groups) R.Int(source, "norm_num_groups", groups, 1, R.MaxChannels);   // null checked by the validation
        R.Positive(source, "norm_eps", c.NormEps, 1);
        R.Probability(source, "dropout", c.Dropout);
        R.NonZero(source, "mid_block_scale_factor", c.MidBlockScaleFactor);
        R.NonZero(source, "resnet_out_scale_factor", c.ResnetOutScaleFactor);
        R.DownsamplePadding(source, c.DownsamplePadding);
        R.Int(source, "conv_in_kernel", c.ConvInKernel, 1, R.MaxKernel);
        R.Int(source, "conv_out_kernel", c.ConvOutKernel, 1, R.MaxKernel);
        if (c.TimeEmbeddingType != "fourier") FreqShift(source, c.FreqShift, c.BlockOutChannels[0]);
        if (c.TimeEmbeddingDim is int ted) R.Int(source, "time_embedding_dim", ted, 2, 4L * R.MaxChannels);
        if (c.TimeCondProjDim is int tcp) R.Int(source, "time_cond_proj_dim", tcp, 1, R.MaxChannels);
        if (c.EncoderHidDim is int ehd) R.Int(source, "encoder_hid_dim", ehd, 1, R.MaxChannels);
        if (c.ProjectionClassEmbeddingsInputDim is int pci) R.Int(source, "projection_class_embeddings_input_dim", pci, 1, R.MaxChannels);
        if (c.NumClassEmbeds is int nce) R.Int(source, "num_class_embeds", nce, 1, R.MaxClassEmbeds);
        R.SampleSize(source, c.SampleSize);
        ModelSize.Check(source, "UNet2DConditionModel", ModelSize.UNet2DCondition(c));
    }

    /// <summary>Every depth of transformer_layers_per_block-style entries in range, named [block] or [block][layer].</summary>
    internal static void Depths(string source, string key, TransformerDepth[] entries)
    {
        for (int i = 0; i < entries.Length; i++)
        {
            int[] depths = entries[i].Depths;
            for (int j = 0; j < depths.Length; j++)
                R.Int(source, key, depths[j], 0, R.MaxLayersPerBlock, entries[i].IsPerLayer ? $"{key}[{i}][{j}]" : $"{key}[{i}]");
        }
    }

    public static void RequiredAutoencoderKL(AutoencoderKLConfig c, string source)
    {
        R.List(source, "block_out_channels", c.BlockOutChannels);
        R.List(source, "down_block_types", c.DownBlockTypes);
        R.List(source, "up_block_types", c.UpBlockTypes);
    }

    public static void AutoencoderKL(AutoencoderKLConfig c, string source)
    {
        R.AllFinite(c, source);
        R.Int(source, "in_channels", c.InChannels, 1, R.MaxChannels);
        R.Int(source, "out_channels", c.OutChannels, 1, R.MaxChannels);
        R.Int(source, "latent_channels", c.LatentChannels, 1, R.MaxChannels);
        R.Ints(source, "block_out_channels", c.BlockOutChannels, 1, R.MaxChannels);
        R.Int(source, "layers_per_block", c.LayersPerBlock, 1, R.MaxLayersPerBlock);
        R.Int(source, "norm_num_groups", c.NormNumGroups, 1, R.MaxChannels);
        if (c.SampleSize is { } s)
            for (int i = 0; i < s.Length; i++) R.Int(source, "sample_size", s[i], 1, R.MaxSampleSize);
        ModelSize.Check(source, "AutoencoderKL", ModelSize.AutoencoderKL(c));
    }

    /// <summary>transformers' CLIPTextConfig: sizes, a positive layer_norm_eps, finite values, and the memory it needs.</summary>
    public static void Clip(CLIPTextConfig c, string source)
    {
        void Fail(string key, string message) =>
            throw new ConfigException($"{source}: {key} {message}") { FilePath = source, Key = key };
        void Int(string key, long v, long max)
        {
            if (v < 1 || v > max) Fail(key, $"must be between 1 and {max}, got {v}");
        }
        Int("vocab_size", c.VocabSize, 1 << 24);
        Int("hidden_size", c.HiddenSize, R.MaxChannels);
        Int("intermediate_size", c.IntermediateSize, 4L * R.MaxChannels);
        Int("projection_dim", c.ProjectionDim, R.MaxChannels);
        Int("num_hidden_layers", c.NumHiddenLayers, 256);
        Int("num_attention_heads", c.NumAttentionHeads, c.HiddenSize);
        Int("max_position_embeddings", c.MaxPositionEmbeddings, 1_000_000);
        foreach (var (key, v) in new[] { ("layer_norm_eps", c.LayerNormEps), ("attention_dropout", c.AttentionDropout),
                     ("initializer_range", c.InitializerRange), ("initializer_factor", c.InitializerFactor) })
            if (!double.IsFinite(v)) Fail(key, $"must be a finite number, got {R.Fmt(v)}");
        if (!(c.LayerNormEps > 0 && c.LayerNormEps <= 1)) Fail("layer_norm_eps", $"must be a positive number of at most 1, got {R.Fmt(c.LayerNormEps)}");
        if (!(c.AttentionDropout >= 0 && c.AttentionDropout <= 1)) Fail("attention_dropout", $"must be between 0 and 1, got {R.Fmt(c.AttentionDropout)}");
        ModelSize.Check(source, "CLIPTextModel", ModelSize.Clip(c, withProjection: true));
    }

    /// <summary>The sinusoidal embedding divides by (half the channels − freq_shift): it must stay positive.</summary>
    private static void FreqShift(string source, int freqShift, int channels)
    {
        if (freqShift < 0 || freqShift >= channels / 2)
            R.Fail(source, "freq_shift", $"freq_shift must be between 0 and {channels / 2 - 1} (half of block_out_channels[0] = {channels}, minus 1), got {freqShift}");
    }
}
