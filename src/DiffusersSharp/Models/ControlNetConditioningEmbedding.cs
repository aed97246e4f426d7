using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>ControlNetConditioningEmbedding</c> (models/controlnet.py, v0.25.1): the small encoder that brings a
/// control image to the latent size. <c>conv_in</c> (3×3, conditioning channels → c0), then per further entry of
/// <c>conditioning_embedding_out_channels</c> a 3×3 conv c_i → c_i and a stride-2 3×3 conv c_i → c_(i+1), SiLU after
/// each of these, and a final 3×3 <c>conv_out</c> to <c>block_out_channels[0]</c> without activation (zero-initialised
/// by diffusers). Weight names: <c>conv_in</c>, <c>blocks.{k}</c>, <c>conv_out</c>.
/// </summary>
public sealed class ControlNetConditioningEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv_in;
    private readonly ModuleList<Conv2d> blocks = new();
    private readonly Conv2d conv_out;

    /// <summary>Builds the encoder (random weights; <c>conv_out</c> zero, as diffusers' <c>zero_module</c>).</summary>
    public ControlNetConditioningEmbedding(int conditioningEmbeddingChannels, int conditioningChannels, int[] blockOutChannels)
        : base(nameof(ControlNetConditioningEmbedding))
    {
        conv_in = Layers.Conv2d(conditioningChannels, blockOutChannels[0], kernel_size: 3, padding: 1);
        for (int i = 0; i < blockOutChannels.Length - 1; i++)
        {
            int channelIn = blockOutChannels[i], channelOut = blockOutChannels[i + 1];
            blocks.Add(Layers.Conv2d(channelIn, channelIn, kernel_size: 3, padding: 1));
            blocks.Add(Layers.Conv2d(channelIn, channelOut, kernel_size: 3, padding: 1, stride: 2));
        }
        conv_out = ControlNetModel.ZeroModule(Layers.Conv2d(blockOutChannels[^1], conditioningEmbeddingChannels, kernel_size: 3, padding: 1));
        RegisterComponents();
    }

    /// <summary>How many times the encoder halves the image size (2^n is the ratio image : latents it expects).</summary>
    public int Downsamplings => blocks.Count / 2;

    /// <summary>The embedding of a control image (B, conditioning channels, H, W) → (B, block_out_channels[0], H / 2^n, W / 2^n).</summary>
    public override Tensor forward(Tensor conditioning)
    {
        using var scope = torch.NewDisposeScope();
        var embedding = nn.functional.silu(conv_in.forward(conditioning));
        foreach (var block in blocks)
            embedding = nn.functional.silu(block.forward(embedding));
        return scope.MoveToOuter(conv_out.forward(embedding));
    }
}
