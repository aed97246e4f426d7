using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>AdapterBlock</c> and <c>LightAdapterBlock</c> (models/adapter.py, v0.25.1), one class: an optional 2×2
/// average pool (<c>ceil_mode</c>), <c>in_conv</c> (1×1; the full block has it only when the channels change, the light
/// block always, to out/4 channels), <c>resnets</c> (<see cref="AdapterResnetBlock"/>) and, in the light block,
/// <c>out_conv</c> (1×1, back to the output channels).
/// </summary>
internal sealed class AdapterBlock : nn.Module<Tensor, Tensor>
{
    private readonly bool _down;
    private readonly Conv2d? in_conv;
    private readonly Sequential resnets;
    private readonly Conv2d? out_conv;

    private AdapterBlock(int inChannels, int outChannels, int numResBlocks, bool down, bool light) : base(light ? "LightAdapterBlock" : nameof(AdapterBlock))
    {
        _down = down;
        int mid = light ? outChannels / 4 : outChannels;
        if (light || inChannels != outChannels)
            in_conv = Layers.Conv2d(inChannels, mid, kernel_size: 1);
        resnets = nn.Sequential(Enumerable.Range(0, numResBlocks)
            .Select(_ => (nn.Module<Tensor, Tensor>)new AdapterResnetBlock(mid, light)).ToArray());
        if (light) out_conv = Layers.Conv2d(mid, outChannels, kernel_size: 1);
        RegisterComponents();
    }

    /// <summary>diffusers' <c>AdapterBlock(in_channels, out_channels, num_res_blocks, down)</c>.</summary>
    public static AdapterBlock Full(int inChannels, int outChannels, int numResBlocks, bool down = false) =>
        new(inChannels, outChannels, numResBlocks, down, light: false);

    /// <summary>diffusers' <c>LightAdapterBlock(in_channels, out_channels, num_res_blocks, down)</c>.</summary>
    public static AdapterBlock Light(int inChannels, int outChannels, int numResBlocks, bool down = false) =>
        new(inChannels, outChannels, numResBlocks, down, light: true);

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        if (_down) x = nn.functional.avg_pool2d(x, new long[] { 2, 2 }, new long[] { 2, 2 }, ceil_mode: true);
        if (in_conv is not null) x = in_conv.forward(x);
        x = resnets.forward(x);
        if (out_conv is not null) x = out_conv.forward(x);
        return scope.MoveToOuter(x);
    }
}

/// <summary>
/// diffusers' <c>AdapterResnetBlock</c> / <c>LightAdapterResnetBlock</c>: <c>x + block2(relu(block1(x)))</c>, block1 a
/// 3×3 convolution, block2 1×1 (full) or 3×3 (light).
/// </summary>
internal sealed class AdapterResnetBlock : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d block1;
    private readonly Conv2d block2;

    public AdapterResnetBlock(int channels, bool light) : base(light ? "LightAdapterResnetBlock" : nameof(AdapterResnetBlock))
    {
        block1 = Layers.Conv2d(channels, channels, kernel_size: 3, padding: 1);
        block2 = light ? Layers.Conv2d(channels, channels, kernel_size: 3, padding: 1) : Layers.Conv2d(channels, channels, kernel_size: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = block2.forward(nn.functional.relu(block1.forward(x)));
        return scope.MoveToOuter(h.add_(x));
    }
}
