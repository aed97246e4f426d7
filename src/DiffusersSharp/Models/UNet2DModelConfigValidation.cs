using static DiffusersSharp.Models.ConfigRanges;

namespace DiffusersSharp.Models;

/// <summary>
/// Checks a <see cref="UNet2DModelConfig"/> before a model is built, so that a bad value is reported as a
/// <see cref="ConfigException"/> naming the file, the key and the value rather than failing deep inside.
/// </summary>
internal static class UNet2DModelConfigValidation
{
    public static void Validate(UNet2DModelConfig c, string source)
    {
        ModelConfigRanges.RequiredUNet2D(c, source);
        if (c.DownBlockTypes.Length != c.UpBlockTypes.Length)
            Fail(source, "up_block_types", $"Must provide the same number of `down_block_types` as `up_block_types`. `down_block_types`: [{Join(c.DownBlockTypes)}]. `up_block_types`: [{Join(c.UpBlockTypes)}].");
        if (c.BlockOutChannels.Length != c.DownBlockTypes.Length)
            Fail(source, "block_out_channels", $"Must provide the same number of `block_out_channels` as `down_block_types`. `block_out_channels`: [{string.Join(", ", c.BlockOutChannels)}]. `down_block_types`: [{Join(c.DownBlockTypes)}].");
        if (c.BlockOutChannels.Length == 0)
            Fail(source, "block_out_channels", "block_out_channels must not be empty");
        for (int i = 0; i < c.DownBlockTypes.Length; i++)
            if (!UNet2DBlocks.IsDownBlock(c.DownBlockTypes[i], crossAttention: false))
                Fail(source, "down_block_types", $"{Unknown("down", c.DownBlockTypes[i])} '{c.DownBlockTypes[i]}' at index {i} (supported: {string.Join(", ", UNet2DBlocks.DownBlockTypes(crossAttention: false))})");
        for (int i = 0; i < c.UpBlockTypes.Length; i++)
            if (!UNet2DBlocks.IsUpBlock(c.UpBlockTypes[i], crossAttention: false))
                Fail(source, "up_block_types", $"{Unknown("up", c.UpBlockTypes[i])} '{c.UpBlockTypes[i]}' at index {i} (supported: {string.Join(", ", UNet2DBlocks.UpBlockTypes(crossAttention: false))})");
        if (c.TimeEmbeddingType is not ("positional" or "fourier" or "learned"))
            Fail(source, "time_embedding_type", $"unknown time_embedding_type '{c.TimeEmbeddingType}' (expected positional, fourier or learned)");
        if (c.TimeEmbeddingType == "learned" && c.NumTrainTimesteps is not > 0)
            Fail(source, "num_train_timesteps", $"time_embedding_type 'learned' needs num_train_timesteps > 0, got {c.NumTrainTimesteps?.ToString() ?? "null"}");
        if (c.ClassEmbedType is not (null or "timestep" or "identity"))
            Fail(source, "class_embed_type", $"unknown class_embed_type '{c.ClassEmbedType}' (expected null, timestep or identity)");
        if (c.ResnetTimeScaleShift is not ("default" or "scale_shift"))
            Fail(source, "resnet_time_scale_shift", $"unsupported resnet_time_scale_shift '{c.ResnetTimeScaleShift}' (expected default or scale_shift)");
        if (c.DownsampleType is not ("conv" or "resnet"))
            Fail(source, "downsample_type", $"unknown downsample_type '{c.DownsampleType}' (expected conv or resnet)");
        if (c.UpsampleType is not ("conv" or "resnet"))
            Fail(source, "upsample_type", $"unknown upsample_type '{c.UpsampleType}' (expected conv or resnet)");
        if (c.ActFn.ToLowerInvariant() is not ("swish" or "silu" or "mish" or "gelu" or "relu"))
            Fail(source, "act_fn", $"unsupported act_fn '{c.ActFn}' (expected swish, silu, mish, gelu or relu)");
        NormGroups(source, c.NormNumGroups, c.BlockOutChannels);
        if (c.AttentionHeadDim is int hd && hd <= 0)
            Fail(source, "attention_head_dim", $"attention_head_dim must be positive, got {hd}");
        if (c.LayersPerBlock <= 0)
            Fail(source, "layers_per_block", $"layers_per_block must be positive, got {c.LayersPerBlock}");
        if (c.InChannels <= 0 || c.OutChannels <= 0)
            Fail(source, c.InChannels <= 0 ? "in_channels" : "out_channels", $"channel counts must be positive, got in_channels {c.InChannels}, out_channels {c.OutChannels}");
        ModelConfigRanges.UNet2D(c, source);
    }

    // a diffusers type DiffusersSharp does not port, or one that needs the encoder_hidden_states UNet2DModel never passes
    private static string Unknown(string side, string type) =>
        UNet2DBlocks.IsNotPorted(type) || UNet2DBlocks.NeedsCrossAttention(type)
            ? $"{side} block type not supported in a DiffusersSharp UNet2DModel:"
            : $"unknown {side} block type";

    private static string Join(string[] s) => string.Join(", ", s.Select(x => $"'{x}'"));
}
