using DiffusersSharp.Models.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers 0.25.1's <c>ResnetBlock2D</c> with <c>time_embedding_norm="ada_group"</c> (models/resnet.py; diffusers 0.26
/// splits it out as <c>ResnetBlockCondNorm2D</c>), as the K-diffusion blocks build it: <see cref="AdaGroupNorm"/> (the
/// time embedding's scale and shift) → act → conv1 → AdaGroupNorm → act → dropout → conv2, plus the input (through a
/// 1×1 <c>conv_shortcut</c> when the channels change). No <c>time_emb_proj</c>. Weight names: <c>norm1.linear</c>,
/// <c>conv1</c>, <c>norm2.linear</c>, <c>conv2</c>, <c>conv_shortcut</c>.
/// </summary>
public sealed class ResnetBlockCondNorm2D : nn.Module
{
    private readonly AdaGroupNorm norm1;
    private readonly LoRACompatibleConv conv1;
    private readonly AdaGroupNorm norm2;
    private readonly LoRACompatibleConv conv2;
    private readonly LoRACompatibleConv? conv_shortcut;
    private readonly Func<Tensor, Tensor> _act;

    /// <summary>diffusers' <c>dropout</c> probability before conv2 (only active in training).</summary>
    public double Dropout { get; }
    /// <summary>diffusers' <c>output_scale_factor</c>: the output is divided by this.</summary>
    public double OutputScaleFactor { get; }

    /// <summary>
    /// Builds the block from diffusers' <c>ResnetBlock2D</c> arguments that the ada_group form reads (same names and
    /// defaults, in .NET casing); <paramref name="conv2dOutChannels"/>: conv2's (and the shortcut's) output channels,
    /// null: <paramref name="outChannels"/>.
    /// </summary>
    public ResnetBlockCondNorm2D(int inChannels, int? outChannels = null, double dropout = 0.0, int tembChannels = 512,
        int groups = 32, int? groupsOut = null, double eps = 1e-6, string nonLinearity = "swish",
        double outputScaleFactor = 1.0, bool? useInShortcut = null, bool convShortcutBias = true, int? conv2dOutChannels = null)
        : base(nameof(ResnetBlockCondNorm2D))
    {
        int outCh = outChannels ?? inChannels;
        Dropout = dropout;
        OutputScaleFactor = outputScaleFactor;
        norm1 = new AdaGroupNorm(tembChannels, inChannels, groups, eps: eps);
        conv1 = new LoRACompatibleConv(inChannels, outCh, kernelSize: 3, stride: 1, padding: 1);
        norm2 = new AdaGroupNorm(tembChannels, outCh, groupsOut ?? groups, eps: eps);
        int conv2Out = conv2dOutChannels ?? outCh;
        conv2 = new LoRACompatibleConv(outCh, conv2Out, kernelSize: 3, stride: 1, padding: 1);
        _act = Activations.Get(nonLinearity);
        if (useInShortcut ?? inChannels != conv2Out)
            conv_shortcut = new LoRACompatibleConv(inChannels, conv2Out, kernelSize: 1, stride: 1, padding: 0, bias: convShortcutBias);
        RegisterComponents();
    }

    /// <summary>The block on <paramref name="inputTensor"/> (B, C, H, W) with the time embedding <paramref name="temb"/> (B, temb_channels).</summary>
    public Tensor Forward(Tensor inputTensor, Tensor temb)
    {
        using var scope = torch.NewDisposeScope();
        var h = new Chain(inputTensor);
        h.Then(x => _act(norm1.Forward(x, temb)));
        h.Then(conv1.forward);
        h.Then(x => _act(norm2.Forward(x, temb)));
        if (Dropout > 0 && training)
            h.Then(x => nn.functional.dropout(x, Dropout, training: true));
        h.Then(conv2.forward);
        var residual = conv_shortcut is null ? inputTensor : conv_shortcut.forward(inputTensor);
        h.Then(x => residual + x);
        if (OutputScaleFactor != 1.0)
            h.Then(x => x / OutputScaleFactor);
        return scope.MoveToOuter(h.Value);
    }
}
