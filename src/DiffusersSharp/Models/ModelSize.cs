using System.Globalization;

namespace DiffusersSharp.Models;

/// <summary>
/// The parameter count a config asks for, computed from the config alone (the convolutions, linear layers,
/// embeddings and norms diffusers builds, in its channel arithmetic), so that a model that cannot fit in this
/// machine's memory is refused before its first tensor is allocated (and before random initialisation would touch
/// every page of it). The counts agree with <c>NumParameters()</c> to within a few percent (tests compare them).
/// </summary>
internal static class ModelSize
{
    /// <summary>The memory this process may use: the physical memory, or the container's limit when lower.</summary>
    public static long MachineMemoryBytes()
    {
        long total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return total > 0 ? total : long.MaxValue;
    }

    /// <summary>
    /// Refuses a model whose parameters alone need more than the machine's memory even in a 16-bit dtype (a model is
    /// built in its load dtype, and the config is read before that is known: bf16/fp16, 2 bytes a parameter, is the
    /// least any load takes, so an SDXL UNet that fits in bf16 is never refused for its float32 size).
    /// </summary>
    public static void Check(string source, string model, double parameters)
    {
        double bytes = parameters * 2;
        long machine = MachineMemoryBytes();
        if (bytes > machine)
            throw new ConfigException(
                $"{source}: this {model} config asks for {Count(parameters)} parameters ({Gb(bytes)} even in bf16/fp16), more than this machine's {Gb(machine)} of memory; check block_out_channels, layers_per_block and the other sizes")
            { FilePath = source };
    }

    private static string Gb(double bytes) => (bytes / (1L << 30)).ToString(bytes < 1e11 ? "0.0" : "0.###E+0", CultureInfo.InvariantCulture) + " GiB";

    private static string Count(double n) => n < 1e12
        ? n.ToString("#,0", CultureInfo.InvariantCulture)
        : n.ToString("0.###E+0", CultureInfo.InvariantCulture);

    // --- building blocks (weights + biases)

    private static double Conv(double cin, double cout, double k = 3) => cin * cout * k * k + cout;
    private static double Linear(double cin, double cout) => cin * cout + cout;
    private static double Norm(double c) => 2 * c;

    /// <summary>ResnetBlock2D: two norms, two 3×3 convs, the time projection, a 1×1 shortcut when the channels change.</summary>
    private static double Resnet(double cin, double cout, double temb, bool scaleShift = false) =>
        Norm(cin) + Conv(cin, cout) + (temb > 0 ? Linear(temb, scaleShift ? 2 * cout : cout) : 0) + Norm(cout) + Conv(cout, cout)
        + (cin != cout ? Conv(cin, cout, 1) : 0);

    /// <summary>Self-attention over a feature map (group norm, q, k, v, out).</summary>
    private static double Attention(double c) => Norm(c) + 4 * Linear(c, c);

    /// <summary>Transformer2DModel with <paramref name="layers"/> BasicTransformerBlocks (self, cross, GEGLU feed-forward).</summary>
    private static double Transformer(double c, double cross, double layers) =>
        Norm(c) + 2 * Linear(c, c)
        + layers * (3 * Norm(c) + 4 * c * c + c + (2 * c * c + 2 * cross * c + c) + Linear(c, 8 * c) + Linear(4 * c, c));

    private static T At<T>(T[] values, int i) => values.Length == 1 ? values[0] : values[Math.Min(i, values.Length - 1)];

    /// <summary>
    /// The resnets and resampling convolutions of a UNet's down and up paths (diffusers' channel arithmetic: an up
    /// block's resnets take the previous output concatenated with a skip connection); <paramref name="perLayer"/>(block, layer,
    /// channels, up) adds what a block has beside each resnet (attention, a transformer).
    /// </summary>
    private static double UNetPaths(int[] boc, Func<int, int> layersAt, double temb, bool scaleShift, Func<int, int, double, bool, double> perLayer)
    {
        int n = boc.Length;
        double total = 0, output = boc[0];
        for (int i = 0; i < n; i++)
        {
            double input = output;
            output = boc[i];
            for (int j = 0; j < layersAt(i); j++)
                total += Resnet(j == 0 ? input : output, output, temb, scaleShift) + perLayer(i, j, output, false);
            if (i < n - 1) total += Conv(output, output);
        }
        var rev = boc.Reverse().ToArray();
        output = rev[0];
        for (int i = 0; i < n; i++)
        {
            double prev = output;
            output = rev[i];
            double input = rev[Math.Min(i + 1, n - 1)];
            int layers = layersAt(n - 1 - i) + 1;
            for (int j = 0; j < layers; j++)
                total += Resnet((j == 0 ? prev : output) + (j == layers - 1 ? input : output), output, temb, scaleShift) + perLayer(i, j, output, true);
            if (i < n - 1) total += Conv(output, output);
        }
        return total;
    }

    /// <summary>UNet2DModel.</summary>
    public static double UNet2D(UNet2DModelConfig c)
    {
        var boc = c.BlockOutChannels;
        double c0 = boc[0], temb = 4 * c0, last = boc[^1];
        bool ss = c.ResnetTimeScaleShift == "scale_shift";
        double total = Conv(c.InChannels, c0) + Linear(c.TimeEmbeddingType == "fourier" ? 2 * c0 : c0, temb) + Linear(temb, temb);
        if (c.TimeEmbeddingType == "learned") total += (double)(c.NumTrainTimesteps ?? 0) * c0;
        if (c.NumClassEmbeds is int nce && c.ClassEmbedType is null) total += (double)nce * temb;
        total += UNetPaths(boc, _ => c.LayersPerBlock, temb, ss, (i, _, ch, up) =>
            (up ? c.UpBlockTypes[i] : c.DownBlockTypes[i]).Contains("Attn", StringComparison.Ordinal) ? Attention(ch) : 0);
        total += 2 * Resnet(last, last, temb, ss) + (c.AddAttention ? Attention(last) : 0);
        return total + Norm(c0) + Conv(c0, c.OutChannels);
    }

    /// <summary>UNet2DConditionModel.</summary>
    public static double UNet2DCondition(UNet2DConditionModelConfig c)
    {
        var boc = c.BlockOutChannels;
        int n = boc.Length;
        double c0 = boc[0], last = boc[^1];
        double temb = c.TimeEmbeddingDim ?? (c.TimeEmbeddingType == "fourier" ? 2 * c0 : 4 * c0);
        bool ss = c.ResnetTimeScaleShift == "scale_shift";
        double total = Conv(c.InChannels, c0, c.ConvInKernel) + Linear(c.TimeEmbeddingType == "fourier" ? temb : c0, temb) + Linear(temb, temb);
        if (c.NumClassEmbeds is int nce && c.ClassEmbedType is null) total += (double)nce * temb;
        if (c.EncoderHidDim is int ehd) total += Linear(ehd, At(c.CrossAttentionDim, 0));
        double blockTemb = c.ClassEmbeddingsConcat ? 2 * temb : temb;
        total += UNetPaths(boc, i => At(c.LayersPerBlock, i), blockTemb, ss, (i, j, ch, up) =>
        {
            string type = up ? c.UpBlockTypes[i] : c.DownBlockTypes[i];
            int level = up ? n - 1 - i : i;
            var depth = up ? PerBlockDepths.Up(c.TransformerLayersPerBlock, c.ReverseTransformerLayersPerBlock, i)
                : PerBlockDepths.Down(c.TransformerLayersPerBlock, level);
            return type.Contains("CrossAttn", StringComparison.Ordinal) ? Transformer(ch, At(c.CrossAttentionDim, level), depth.At(j))
                : type.Contains("Attn", StringComparison.Ordinal) ? Attention(ch) : 0;
        });
        if (c.MidBlockType == "UNetMidBlock2DCrossAttn")
            total += 2 * Resnet(last, last, blockTemb, ss) + Transformer(last, At(c.CrossAttentionDim, n - 1), PerBlockDepths.Mid(c.TransformerLayersPerBlock).At(0));
        else if (c.MidBlockType == "UNetMidBlock2D")
            total += Resnet(last, last, blockTemb, ss);
        return total + Norm(c0) + Conv(c0, c.OutChannels, c.ConvOutKernel);
    }

    /// <summary>AutoencoderKL: encoder, decoder, quant and post-quant convs.</summary>
    public static double AutoencoderKL(AutoencoderKLConfig c)
    {
        var boc = c.BlockOutChannels;
        int n = boc.Length;
        double lat = c.LatentChannels, last = boc[^1];
        double mid = 2 * Resnet(last, last, 0) + Attention(last);
        // encoder
        double total = Conv(c.InChannels, boc[0]);
        double output = boc[0];
        for (int i = 0; i < n; i++)
        {
            double input = output;
            output = boc[i];
            for (int j = 0; j < c.LayersPerBlock; j++) total += Resnet(j == 0 ? input : output, output, 0);
            if (i < n - 1) total += Conv(output, output);
        }
        total += mid + Norm(last) + Conv(last, 2 * lat) + Conv(2 * lat, 2 * lat, 1);
        // decoder
        total += Conv(lat, lat, 1) + Conv(lat, last) + mid;
        var rev = boc.Reverse().ToArray();
        output = rev[0];
        for (int i = 0; i < n; i++)
        {
            double prev = output;
            output = rev[i];
            for (int j = 0; j <= c.LayersPerBlock; j++) total += Resnet(j == 0 ? prev : output, output, 0);
            if (i < n - 1) total += Conv(output, output);
        }
        return total + Norm(boc[0]) + Conv(boc[0], c.OutChannels);
    }

    /// <summary>
    /// VQModel: AutoencoderKL's encoder and decoder of the same sizes (its encoder without double_z counted as with it, a
    /// bound), the codebook and the two 1×1 convolutions to and from vq_embed_dim.
    /// </summary>
    public static double VQModel(VQModelConfig c)
    {
        double dim = c.EffectiveVqEmbedDim, lat = c.LatentChannels;
        var kl = new AutoencoderKLConfig
        {
            InChannels = c.InChannels,
            OutChannels = c.OutChannels,
            BlockOutChannels = c.BlockOutChannels,
            LayersPerBlock = c.LayersPerBlock,
            LatentChannels = c.LatentChannels,
        };
        return AutoencoderKL(kl) + (double)c.NumVqEmbeddings * dim + Conv(lat, dim, 1) + Conv(dim, lat, 1);
    }

    /// <summary>CLIPTextModel (with the text projection when <paramref name="withProjection"/>).</summary>
    public static double Clip(CLIPTextConfig c, bool withProjection = false)
    {
        double h = c.HiddenSize;
        double layer = 2 * Norm(h) + 4 * Linear(h, h) + Linear(h, c.IntermediateSize) + Linear(c.IntermediateSize, h);
        return (double)c.VocabSize * h + (double)c.MaxPositionEmbeddings * h + c.NumHiddenLayers * layer + Norm(h)
               + (withProjection ? h * c.ProjectionDim : 0);
    }
}
