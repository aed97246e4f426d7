using DiffusersSharp.Models.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>DecoderTiny</c> (models/autoencoders/vae.py, v0.25.1), TAESD's decoder: the latents are soft-clamped
/// (<c>tanh(x / 3) · 3</c>), then <c>layers</c> runs: conv 3×3 (latents → c₀, bias), act, and per stage its
/// <see cref="AutoencoderTinyBlock"/>s, a nearest ×<c>upsampling_scaling_factor</c> upsample (not after the last stage)
/// and a conv 3×3 (c → c without bias; the last stage's c → out_channels with bias); the output is mapped from
/// [0, 1] to [-1, 1]. Weight names: <c>layers.&lt;i&gt;</c> in that order.
/// </summary>
public sealed class DecoderTiny : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> layers = new();

    /// <summary>Test hook: (path under "decoder.", output) after each layer.</summary>
    internal Action<string, Tensor>? DebugHook { get; set; }

    /// <summary>
    /// The most bytes one activation of the last stage (the layers after the last upsample, at the output's size) takes
    /// in a band of rows (see <see cref="forward"/>); tests lower it to force bands on small images. 4 MB: 64 rows of a
    /// 512² image, eight bands. SD-Turbo's one-shot TAESD decode (e2e (b), alternating, 2026-12-05): one pass 0.32-0.37 s,
    /// bands of 8 MB 0.27-0.29 s, 4 MB 0.24-0.29 s, 2 MB 0.28-0.30 s; the decode's RSS growth 133 → 43 MB.
    /// </summary>
    internal long BandBytes { get; set; } = 4L << 20;

    // where the last stage starts in layers (its last upsample; layers.Count: none), the upsample's factor, and the 3×3
    // convolutions after it (each widens the rows a band needs by one on either side)
    private readonly int tailStart;
    private readonly int factor = 1;
    private readonly int tailConvs;

    /// <summary>The 3×3 convolutions after the last upsample (test hook: TAESD's are 5).</summary>
    internal int TailConvs => tailConvs;

    /// <summary>How many bands the last <see cref="forward"/> ran its last stage in (1: one pass; test hook).</summary>
    internal int LastBands { get; private set; }

    /// <summary>
    /// Builds diffusers' <c>DecoderTiny</c> from its constructor arguments (same names, in .NET casing).
    /// </summary>
    public DecoderTiny(int inChannels, int outChannels, int[] numBlocks, int[] blockOutChannels, int upsamplingScalingFactor,
        string actFn)
        : base(nameof(DecoderTiny))
    {
        layers.Add(new LoRACompatibleConv(inChannels, blockOutChannels[0], 3, padding: 1));
        layers.Add(Activations.Module(actFn));
        for (int i = 0; i < numBlocks.Length; i++)
        {
            bool isFinalBlock = i == numBlocks.Length - 1;
            int channels = blockOutChannels[i];
            for (int b = 0; b < numBlocks[i]; b++)
                layers.Add(new AutoencoderTinyBlock(channels, channels, actFn));
            if (!isFinalBlock)
            {
                double f = upsamplingScalingFactor;
                layers.Add(nn.Upsample(scale_factor: [f, f], mode: UpsampleMode.Nearest));
            }
            int convOut = isFinalBlock ? outChannels : channels;
            layers.Add(new LoRACompatibleConv(channels, convOut, 3, padding: 1, bias: isFinalBlock));
        }
        RegisterComponents();
        tailStart = layers.Count;
        for (int i = 0; i < layers.Count; i++)
            if (layers[i] is Upsample) tailStart = i;
        if (tailStart < layers.Count)
        {
            factor = upsamplingScalingFactor;
            tailConvs = layers.Skip(tailStart).Sum(l => l.modules().Append(l).OfType<LoRACompatibleConv>().Count(c => c.KernelSize == 3));
        }
    }

    /// <summary>The first convolution's kernel (<see cref="ConvKernelLayout"/>'s probe).</summary>
    internal Tensor FirstKernel => ((LoRACompatibleConv)layers[0]).Weight;

    /// <summary>
    /// Latents (B, latent_channels, h, w) → images in [-1, 1] (B, out_channels, h · f^(stages-1), …). The last stage
    /// runs at the output's size, where three activations of 64 channels are live at once (a block's input, a
    /// convolution's input and its output: 100 MB in bf16 for a 512² image, fresh memory on a one-shot run). Where one
    /// of them would exceed <see cref="BandBytes"/>, that stage runs in bands of output rows, each from the rows of the
    /// last upsample's input it needs (one more row either side per 3×3 convolution, so every kept row sees what it sees
    /// in one pass): the same values, with at most a band's activations live.
    /// </summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        // Clamp.
        var h = torch.tanh(x / 3) * 3;
        var low = TinyLayers.Run(layers, 0, tailStart, h, DebugHook, factor == 2);   // the last upsample's input
        long bandRows = DebugHook is null ? BandRows(low) : 0;
        Tensor y;
        if (bandRows > 0) y = LastStageInBands(low, bandRows);
        else
        {
            y = TinyLayers.Run(layers, tailStart, layers.Count, low, DebugHook, factor == 2);
            LastBands = 1;
        }
        // scale image from [0, 1] to [-1, 1] to match diffusers convention
        return y.mul(2).sub_(1).MoveToOuterDisposeScope();
    }

    // The output rows of one band of the last stage, from its input (the last upsample's), or 0 where the whole stage
    // fits BandBytes (or there is none).
    private long BandRows(Tensor low)
    {
        if (tailStart == layers.Count || low.dim() != 4) return 0;
        long height = low.shape[2] * factor, rowBytes = low.shape[0] * low.shape[3] * factor * low.shape[1] * low.ElementSize;
        long rows = Math.Max(2L * tailConvs + 8, BandBytes / Math.Max(1, rowBytes));
        return rows >= height ? 0 : rows;
    }

    private Tensor LastStageInBands(Tensor low, long bandRows)
    {
        long inRows = low.shape[2], height = inRows * factor;
        var bands = new List<Tensor>();
        for (long y0 = 0; y0 < height; y0 += bandRows)
        {
            long y1 = Math.Min(height, y0 + bandRows);
            long s0 = Math.Max(0, FloorDiv(y0 - tailConvs, factor));
            long s1 = Math.Min(inRows, FloorDiv(y1 + tailConvs + factor - 1, factor));
            var part = TinyLayers.Run(layers, tailStart, layers.Count, low.narrow(2, s0, s1 - s0), null, factor == 2);
            bands.Add(part.narrow(2, y0 - s0 * factor, y1 - y0));
        }
        low.Dispose();
        LastBands = bands.Count;
        return torch.cat(bands, 2);
    }

    private static long FloorDiv(long a, long b) => a >= 0 ? a / b : -((-a + b - 1) / b);
}
