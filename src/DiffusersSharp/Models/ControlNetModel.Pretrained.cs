using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class ControlNetModel
{
    /// <summary>
    /// Loads a ControlNetModel from a model folder (<c>config.json</c> + <c>diffusion_pytorch_model[.variant].safetensors</c>
    /// or <c>.bin</c>) or a Hub id such as <c>lllyasviel/sd-controlnet-canny</c> (the Hugging Face cache, downloading when
    /// allowed), or from its <paramref name="subfolder"/>, with <paramref name="options"/> (variant, dtype, device, revision,
    /// cache and Hub settings). Every weight must be in the file (errors name the file, the key and both shapes; tensors
    /// the model lacks are left out with a warning, as diffusers does); the model is in eval mode and its weights belong
    /// to no dispose scope (dispose the model).
    /// </summary>
    public static ControlNetModel FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null) =>
        ModuleScope.Run(() => ModelLoading.FromPretrained<ControlNetModelConfig, ControlNetModel>(idOrPath, subfolder, options,
            (config, path) => FromConfig(config, path), expectedClassName: nameof(ControlNetModel)));

    /// <summary>Writes <c>config.json</c> and <c>diffusion_pytorch_model[.variant].safetensors</c> into <paramref name="directory"/> atomically.</summary>
    public void SavePretrained(string directory, string? variant = null) =>
        ModelLoading.SavePretrained(this, Config, directory, variant: variant);

    /// <summary>
    /// diffusers' <c>ControlNetModel.from_unet</c>: a ControlNet with the <paramref name="unet"/>'s architecture (its config
    /// values where a ControlNet has them) and, with <paramref name="loadWeightsFromUnet"/>, its conv_in, time embedding,
    /// class embedding, down blocks and mid block weights (diffusers 0.25.1 does not copy SDXL's add_embedding; neither
    /// does this). The conditioning embedding is random and the zero convolutions zero, as diffusers initialises them.
    /// The new model is placed on the UNet's device and dtype. The UNet's transformer_layers_per_block is copied as it is,
    /// depths per layer (an asymmetric UNet's nested form) included, as diffusers copies it. A UNet whose
    /// cross_attention_dim or layers_per_block differ per block has no ControlNet equivalent (diffusers' ControlNetModel
    /// takes one value of each): <see cref="ConfigException"/>.
    /// </summary>
    public static ControlNetModel FromUnet(UNet2DConditionModel unet, string controlnetConditioningChannelOrder = "rgb",
        int[]? conditioningEmbeddingOutChannels = null, bool loadWeightsFromUnet = true, int conditioningChannels = 3)
    {
        ArgumentNullException.ThrowIfNull(unet);
        var u = unet.Config;
        var config = new ControlNetModelConfig
        {
            EncoderHidDim = u.EncoderHidDim, EncoderHidDimType = u.EncoderHidDimType, AdditionEmbedType = u.AdditionEmbedType,
            AdditionTimeEmbedDim = u.AdditionTimeEmbedDim, TransformerLayersPerBlock = u.TransformerLayersPerBlock,
            InChannels = u.InChannels, FlipSinToCos = u.FlipSinToCos, FreqShift = u.FreqShift, DownBlockTypes = u.DownBlockTypes,
            OnlyCrossAttention = u.OnlyCrossAttention, BlockOutChannels = u.BlockOutChannels,
            LayersPerBlock = Single(u.LayersPerBlock, "layers_per_block"), DownsamplePadding = u.DownsamplePadding,
            MidBlockScaleFactor = u.MidBlockScaleFactor, ActFn = u.ActFn, NormNumGroups = u.NormNumGroups, NormEps = u.NormEps,
            CrossAttentionDim = Single(u.CrossAttentionDim, "cross_attention_dim"), AttentionHeadDim = u.AttentionHeadDim,
            NumAttentionHeads = u.NumAttentionHeads, UseLinearProjection = u.UseLinearProjection,
            ClassEmbedType = u.ClassEmbedType, NumClassEmbeds = u.NumClassEmbeds, UpcastAttention = u.UpcastAttention,
            ResnetTimeScaleShift = u.ResnetTimeScaleShift, ProjectionClassEmbeddingsInputDim = u.ProjectionClassEmbeddingsInputDim,
            MidBlockType = u.MidBlockType, ControlnetConditioningChannelOrder = controlnetConditioningChannelOrder,
            ConditioningEmbeddingOutChannels = conditioningEmbeddingOutChannels ?? [16, 32, 96, 256],
            ConditioningChannels = conditioningChannels,
        };
        var controlnet = FromConfig(config, "ControlNetModel.FromUnet");
        try
        {
            return ModuleScope.Run(() =>
            {
                controlnet.to(unet.Device);
                controlnet.to(unet.DType);
                if (loadWeightsFromUnet) CopyFromUnet(controlnet, unet);
                return controlnet;
            });
        }
        catch
        {
            controlnet.Dispose();
            throw;
        }
    }

    private static readonly string[] FromUnetPrefixes = ["conv_in.", "time_embedding.", "class_embedding.", "down_blocks.", "mid_block."];

    private static void CopyFromUnet(ControlNetModel controlnet, UNet2DConditionModel unet)
    {
        using var noGrad = torch.no_grad();
        var target = controlnet.state_dict();
        foreach (var (name, value) in unet.state_dict())
        {
            if (!FromUnetPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal))) continue;
            if (!target.TryGetValue(name, out var t) || !t.shape.SequenceEqual(value.shape))
                throw new ConfigException($"ControlNetModel.FromUnet: the UNet's {name} {Layers.Shape(value)} has no counterpart of that shape in the ControlNet");
            t.copy_(value);
        }
    }

    private static int Single(int[] values, string key) => values.Distinct().Count() == 1 ? values[0]
        : throw new ConfigException($"ControlNetModel.FromUnet: the UNet's {key} differs per block ([{string.Join(", ", values)}]); a ControlNetModel takes one value") { Key = key };
}
