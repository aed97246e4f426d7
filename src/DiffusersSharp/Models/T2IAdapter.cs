using DiffusersSharp.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>T2IAdapter</c> (models/adapter.py, v0.25.1): a small ResNet-like model that turns a control image
/// (edges, depth, pose, … in [0, 1]) into one feature map per UNet down block, which the UNet adds inside its down
/// blocks (<c>down_intrablock_additional_residuals</c>). The image is first folded by a pixel unshuffle of
/// <c>downscale_factor</c>; then, by <c>adapter_type</c>:
/// <list type="bullet">
/// <item>"full_adapter" (<c>FullAdapter</c>): <c>conv_in</c> (3×3) and one <c>AdapterBlock</c> per entry of
/// <c>channels</c>, each after the first halving the size;</item>
/// <item>"full_adapter_xl" (<c>FullAdapterXL</c>, SDXL): the same, halving only before the third block;</item>
/// <item>"light_adapter" (<c>LightAdapter</c>): no conv_in; one <c>LightAdapterBlock</c> per entry and a last one, each
/// after the first halving the size.</item>
/// </list>
/// Weight names as diffusers': <c>adapter.conv_in</c>, <c>adapter.body.{i}.in_conv</c>,
/// <c>adapter.body.{i}.resnets.{j}.block1|block2</c>, <c>adapter.body.{i}.out_conv</c>.
/// </summary>
public sealed partial class T2IAdapter : nn.Module
{
    private readonly T2IAdapterBody adapter;

    /// <summary>The model's config.</summary>
    public T2IAdapterConfig Config { get; }

    /// <summary>Builds the model with random weights. An invalid config throws <see cref="ConfigException"/> naming the key.</summary>
    public static T2IAdapter FromConfig(T2IAdapterConfig config, string? source = null) =>
        ModuleScope.Run(() => new T2IAdapter(config, source));

    private T2IAdapter(T2IAdapterConfig config, string? source) : base(nameof(T2IAdapter))
    {
        ArgumentNullException.ThrowIfNull(config);
        Validate(config, source ?? "T2IAdapter config");
        Config = config;
        adapter = new T2IAdapterBody(config);
        RegisterComponents();
        _kernels = new ConvKernelLayout(this, adapter.FirstKernel, channelsLast: false);
    }

    private readonly ConvKernelLayout _kernels;

    /// <summary>
    /// diffusers' <c>downscale_factor</c> property: the pixel-unshuffle factor; the control image's height and width must
    /// be multiples of it.
    /// </summary>
    public int DownscaleFactor => Config.DownscaleFactor;

    /// <summary>
    /// diffusers' <c>total_downscale_factor</c>: image size / size of the last state (full: factor · 2^(n−1); XL: factor · 2;
    /// light: factor · 2^n, for n = len(channels)).
    /// </summary>
    public int TotalDownscaleFactor => Config.AdapterType switch
    {
        "full_adapter" => Config.DownscaleFactor << (Config.Channels.Length - 1),
        "full_adapter_xl" => Config.DownscaleFactor * 2,
        _ => Config.DownscaleFactor << Config.Channels.Length,
    };

    /// <summary>
    /// The states for a control image batch <paramref name="x"/> [B, in_channels, H, W] (H, W multiples of
    /// <see cref="DownscaleFactor"/>): one per block, in order (the UNet's down blocks, then its mid block).
    /// </summary>
    public Tensor[] Forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.dim() != 4 || x.shape[1] != Config.InChannels)
            throw new ArgumentException(
                $"T2IAdapter: the control image has shape {Layers.Shape(x)}; the adapter takes [batch, {Config.InChannels}, height, width] (in_channels {Config.InChannels})", nameof(x));
        if (x.shape[2] % Config.DownscaleFactor != 0 || x.shape[3] % Config.DownscaleFactor != 0)
            throw new ArgumentException(
                $"T2IAdapter: the control image is {x.shape[3]}x{x.shape[2]}; its height and width must be multiples of the adapter's downscale_factor {Config.DownscaleFactor}", nameof(x));
        _kernels.Follow(false);
        using var scope = torch.NewDisposeScope();
        var features = adapter.Forward(x.to(DType, Device));
        scope.MoveToOuter(features);
        return features;
    }

    /// <summary>The dtype of the model's parameters.</summary>
    public ScalarType DType => adapter.FirstKernel().dtype;

    /// <summary>The device of the model's parameters.</summary>
    public Device Device => adapter.FirstKernel().device;

    /// <summary>Number of parameters (each registered parameter counted once, as <c>model.num_parameters()</c>).</summary>
    public long NumParameters() => Layers.NumParameters(this);

    private const int MaxChannels = ModelLimits.MaxChannels, MaxResBlocks = ModelLimits.MaxLayersPerBlock, MaxBlocks = ModelLimits.MaxBlocks;

    /// <summary>The largest <c>downscale_factor</c> (the pixel unshuffle of the control image; 8 or 16 on published adapters).</summary>
    private const int MaxDownscaleFactor = 64;

    private static void Validate(T2IAdapterConfig c, string source)
    {
        ConfigException Bad(string key, string message) => new($"{source}: config key '{key}': {message}") { FilePath = source, Key = key };
        if (!T2IAdapterConfig.AdapterTypes.Contains(c.AdapterType))
            throw Bad("adapter_type", $"unsupported adapter_type '{c.AdapterType}'; choose 'full_adapter', 'full_adapter_xl' or 'light_adapter'");
        // upper bounds as UNet2DModel's (ConfigRanges): a larger value builds for minutes or exhausts memory before any
        // weight is read (num_res_blocks 100000 builds 400000 convolutions; in_channels · downscale_factor² overflows)
        if (c.InChannels < 1 || c.InChannels > MaxChannels) throw Bad("in_channels", $"must be between 1 and {MaxChannels}, got {c.InChannels}");
        if (c.DownscaleFactor < 1 || c.DownscaleFactor > MaxDownscaleFactor)
            throw Bad("downscale_factor", $"must be between 1 and {MaxDownscaleFactor}, got {c.DownscaleFactor}");
        if (c.NumResBlocks < 0 || c.NumResBlocks > MaxResBlocks) throw Bad("num_res_blocks", $"must be between 0 and {MaxResBlocks}, got {c.NumResBlocks}");
        if (c.Channels is null || c.Channels.Length == 0 || c.Channels.Length > MaxBlocks || c.Channels.Any(ch => ch < 1 || ch > MaxChannels))
            throw Bad("channels", $"must list 1 to {MaxBlocks} channel counts between 1 and {MaxChannels}, got [{string.Join(", ", c.Channels ?? [])}]");
        if (c.AdapterType == "full_adapter_xl" && c.Channels.Length < 3)
            throw Bad("channels", $"full_adapter_xl needs at least 3 entries (it halves the size before the third block), got [{string.Join(", ", c.Channels)}]");
        if (c.AdapterType == "light_adapter" && c.Channels.Any(ch => ch < 4))
            throw Bad("channels", $"light_adapter blocks work at a quarter of each entry; every entry must be at least 4, got [{string.Join(", ", c.Channels)}]");
    }
}

/// <summary>diffusers' <c>FullAdapter</c>, <c>FullAdapterXL</c> and <c>LightAdapter</c>: the <c>adapter</c> submodule of a <see cref="T2IAdapter"/>.</summary>
internal sealed class T2IAdapterBody : nn.Module
{
    private readonly long _downscaleFactor;
    private readonly Conv2d? conv_in;
    private readonly ModuleList<AdapterBlock> body = new();

    public T2IAdapterBody(T2IAdapterConfig c) : base(c.AdapterType)
    {
        _downscaleFactor = c.DownscaleFactor;
        int[] ch = c.Channels;
        int inChannels = c.InChannels * c.DownscaleFactor * c.DownscaleFactor;
        int r = c.NumResBlocks;
        switch (c.AdapterType)
        {
            case "full_adapter":
                conv_in = Layers.Conv2d(inChannels, ch[0], kernel_size: 3, padding: 1);
                body.Add(AdapterBlock.Full(ch[0], ch[0], r));
                for (int i = 1; i < ch.Length; i++) body.Add(AdapterBlock.Full(ch[i - 1], ch[i], r, down: true));
                break;
            case "full_adapter_xl":
                conv_in = Layers.Conv2d(inChannels, ch[0], kernel_size: 3, padding: 1);
                for (int i = 0; i < ch.Length; i++)
                    body.Add(i switch
                    {
                        1 => AdapterBlock.Full(ch[0], ch[1], r),
                        2 => AdapterBlock.Full(ch[1], ch[2], r, down: true),
                        _ => AdapterBlock.Full(ch[i], ch[i], r),
                    });
                break;
            default:   // light_adapter
                body.Add(AdapterBlock.Light(inChannels, ch[0], r));
                for (int i = 0; i < ch.Length - 1; i++) body.Add(AdapterBlock.Light(ch[i], ch[i + 1], r, down: true));
                body.Add(AdapterBlock.Light(ch[^1], ch[^1], r, down: true));
                break;
        }
        RegisterComponents();
    }

    /// <summary>The first convolution kernel (the model's dtype and device).</summary>
    public Tensor FirstKernel() => conv_in?.weight ?? parameters().First();

    public Tensor[] Forward(Tensor x)
    {
        var features = new Tensor[body.Count];
        x = nn.functional.pixel_unshuffle(x, _downscaleFactor);
        if (conv_in is not null) x = conv_in.forward(x);
        for (int i = 0; i < body.Count; i++) x = features[i] = body[i].forward(x);
        return features;
    }
}
