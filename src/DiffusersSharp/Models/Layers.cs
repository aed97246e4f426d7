using DiffusersSharp.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>Small factory helpers shared by the model blocks.</summary>
internal static class Layers
{
    /// <summary>
    /// The dtype every layer of a model is made in while <c>FromPretrained</c> builds it in its load dtype
    /// (<see cref="ModelBuild"/>, per thread); null otherwise (torch's default dtype). Pass it as <c>dtype:</c> to each
    /// layer a model makes.
    /// </summary>
    public static ScalarType? BuildDType => ModelBuild.Dtype;

    /// <summary>
    /// True while a checkpoint's strict load follows the build (<see cref="ModelBuild.ForCheckpoint"/>): the weight layers
    /// then allocate their parameters uninitialised instead of drawing PyTorch's initial values, which the load would
    /// overwrite. The factories below, the LoRA-compatible layers' <c>DefaultInit</c> and the Gaussian Fourier projection
    /// read it; every weight layer of the models is made through one of them.
    /// </summary>
    public static bool LeaveUninitialized => ModelBuild.ForCheckpoint;

    /// <summary>
    /// <c>nn.Conv2d(in, out, kernel, stride, padding, bias)</c> in <see cref="BuildDType"/>, initialised as PyTorch does;
    /// uninitialised when <see cref="LeaveUninitialized"/> (built on the meta device, where the initialisation costs
    /// nothing, then given empty CPU parameters).
    /// </summary>
    public static Conv2d Conv2d(long in_channels, long out_channels, long kernel_size, long stride = 1, long padding = 0, bool bias = true) =>
        LeaveUninitialized
            ? WithUninitializedParameters(nn.Conv2d(in_channels, out_channels, kernel_size, stride: stride, padding: padding, bias: bias, device: torch.META, dtype: BuildDType))
            : nn.Conv2d(in_channels, out_channels, kernel_size, stride: stride, padding: padding, bias: bias, dtype: BuildDType);

    /// <summary>
    /// <c>nn.ConvTranspose2d(in, out, kernel, stride, padding, bias)</c> in <see cref="BuildDType"/>; uninitialised when
    /// <see cref="LeaveUninitialized"/> (as <see cref="Conv2d"/>).
    /// </summary>
    public static ConvTranspose2d ConvTranspose2d(long in_channels, long out_channels, long kernel_size, long stride = 1, long padding = 0, bool bias = true) =>
        LeaveUninitialized
            ? WithUninitializedParameters(nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride: stride, padding: padding, bias: bias, device: torch.META, dtype: BuildDType))
            : nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride: stride, padding: padding, bias: bias, dtype: BuildDType);

    /// <summary>A convolution built on the meta device, given uninitialised CPU parameters of the same shapes.</summary>
    private static T WithUninitializedParameters<T>(T conv) where T : Convolution
    {
        conv.weight = Uninitialized(conv.weight.shape);
        if (conv.bias is { } b) conv.bias = Uninitialized(b.shape);
        return conv;
    }

    /// <summary><c>nn.Linear(in, out, bias)</c> in <see cref="BuildDType"/>; uninitialised when <see cref="LeaveUninitialized"/>.</summary>
    public static Linear Linear(long inputSize, long outputSize, bool hasBias = true) =>
        LeaveUninitialized
            ? nn.Linear(Uninitialized([outputSize, inputSize]), hasBias ? Uninitialized([outputSize]) : null)
            : nn.Linear(inputSize, outputSize, hasBias, dtype: BuildDType);

    /// <summary><c>nn.Embedding(num, dims)</c> in <see cref="BuildDType"/>; uninitialised when <see cref="LeaveUninitialized"/>.</summary>
    public static Embedding Embedding(long numEmbeddings, long embeddingDims)
    {
        if (!LeaveUninitialized)
            return nn.Embedding(numEmbeddings, embeddingDims, dtype: BuildDType);
        // TorchSharp's Embedding is native: its constructor always draws float32 weights of the given size (and
        // Embedding_from_pretrained keeps those registered), so it is made empty and handed its weight after
        var embedding = nn.Embedding(0, embeddingDims);
        embedding.weight = Uninitialized([numEmbeddings, embeddingDims]);
        return embedding;
    }

    /// <summary>An uninitialised parameter of <paramref name="shape"/> in <see cref="BuildDType"/> on torch's default device (the CPU).</summary>
    private static Parameter Uninitialized(long[] shape) => new(torch.empty(shape, dtype: BuildDType));

    /// <summary>
    /// A GroupNorm initialised as PyTorch does (weight 1, bias 0); TorchSharp 0.107's <c>nn.GroupNorm</c>
    /// leaves its affine parameters uninitialised.
    /// </summary>
    public static GroupNorm GroupNorm(long numGroups, long numChannels, double eps, bool affine = true)
    {
        if (numGroups <= 0 || numChannels % numGroups != 0)
            throw new ArgumentException($"GroupNorm: num_channels ({numChannels}) must be divisible by num_groups ({numGroups})");
        var gn = nn.GroupNorm(numGroups, numChannels, eps, affine, dtype: Layers.BuildDType);
        if (affine)
        {
            using var _ = torch.no_grad();
            // the Scalar held to the end: TorchSharp's fill_ does not keep its argument alive, and an implicit temporary
            // can be finalised during the native call (seen once: a model built on another thread died in toFloat)
            using var one = 1.0.ToScalar();
            using var zero = 0.0.ToScalar();
            gn.weight.fill_(one);
            gn.bias!.fill_(zero);   // not zero_(): TorchSharp 0.107's returns a new tensor, left to the finalizer
        }
        return gn;
    }

    /// <summary>The model's parameter dtype (what diffusers calls <c>self.dtype</c>).</summary>
    public static ScalarType ParamDType(nn.Module m)
    {
        foreach (var (_, p) in m.named_parameters()) return p.dtype;
        return torch.get_default_dtype();
    }

    /// <summary>The same NCHW tensor with NHWC strides (channels-last), as torch's <c>memory_format=channels_last</c>.</summary>
    public static Tensor ToChannelsLast(Tensor x) => x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);

    /// <summary>
    /// A dense channels-last (N, <paramref name="channels"/>, H, W) view of <paramref name="memory"/>'s storage (of memory's
    /// N, H and W), from <paramref name="offset"/> elements past memory's first one: where a layer writes its output into
    /// memory it owns (ResnetBlock2D's handed-over input).
    /// </summary>
    internal static Tensor ChannelsLastIn(Tensor memory, long channels, long offset)
    {
        long n = memory.shape[0], height = memory.shape[2], width = memory.shape[3];
        return memory.as_strided([n, channels, height, width], [height * width * channels, 1, width * channels, channels],
            memory.storage_offset() + offset);
    }

    /// <summary>True when a 4-D tensor has channels-last strides.</summary>
    public static bool IsChannelsLast(Tensor x) =>
        x.dim() == 4 && x.stride(1) == 1 && x.stride(3) == x.shape[1] && x.stride(2) == x.shape[1] * x.shape[3];

    /// <summary>Number of parameters, each registered parameter counted once (diffusers' <c>model.num_parameters()</c>).</summary>
    public static long NumParameters(nn.Module module)
    {
        var seen = new HashSet<IntPtr>();
        long total = 0;
        foreach (var (_, p) in module.named_parameters())
            if (seen.Add(p.Handle)) total += p.numel();
        return total;
    }

    public static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";

    /// <summary>
    /// <c>module.forward(x)</c> for a 1×1 projection, except where oneDNN would crash: a channels-last 1×1
    /// convolution (stride 1, no padding, one group) whose (in, out) channels are one of the pairs that oneDNN
    /// 3.7's brgemm 1×1 convolution special-cases (<see cref="IsOneDnnDivideByZeroPair"/>) runs as the same product
    /// over channels, <c>addmm</c> on the NHWC rows (no copies; the result has NHWC strides like the convolution's).
    /// Creating that oneDNN convolution divides an integer by zero (SIGFPE, the process dies) on CPUs that report
    /// tiny or no cache sizes (libtorch 2.10's oneDNN v3.7.1, <c>brg_blocking_t::est_eff_1x1</c>; see
    /// docs/ARCHITECTURE.md, "Native set-up"). Every other module, layout and shape takes its usual path
    /// (a <see cref="Lora.LoRACompatibleConv"/> makes the same choice in its own forward).
    /// </summary>
    public static Tensor Pointwise(nn.Module<Tensor, Tensor> module, Tensor x)
    {
        if (module is not Conv2d conv || x.dim() != 4 || !IsChannelsLast(x) || !IsPlain1x1(conv)
            || !IsOneDnnDivideByZeroPair(conv.in_channels, conv.out_channels))
            return module.forward(x);
        return PointwiseAddmm(conv.weight!, conv.bias, x);
    }

    /// <summary>
    /// A 1×1 convolution (<paramref name="weight"/> [O, C, 1, 1]) of a channels-last <paramref name="x"/> as <c>addmm</c>
    /// on its NHWC rows (no copies; the result has NHWC strides, like the convolution's). See <see cref="Pointwise"/>.
    /// </summary>
    public static Tensor PointwiseAddmm(Tensor weight, Tensor? bias, Tensor x)
    {
        long b = x.shape[0], h = x.shape[2], w = x.shape[3], c = weight.shape[1], o = weight.shape[0];
        using var rows = x.permute(0, 2, 3, 1).reshape(b * h * w, c); // a view: x has NHWC strides
        using var wt = weight.view(o, c).t();
        using var y = bias is not null ? bias.addmm(rows, wt) : rows.mm(wt);
        return y.view(b, h, w, o).permute(0, 3, 1, 2);
    }

    /// <summary>
    /// The (in, out) channel pairs for which oneDNN 3.7.1's brgemm 1×1 convolution estimates its blocking with an
    /// integer division (its "maskrcnn" heuristic) whose divisor is zero when the CPU's L1 cache, as oneDNN reads it,
    /// is smaller than one row of the reduction (4 KB for 1024 fp32 input channels).
    /// </summary>
    public static bool IsOneDnnDivideByZeroPair(long inChannels, long outChannels) =>
        (inChannels, outChannels) is (1024, 2048) or (1024, 512) or (256, 1024) or (512, 1024) or (512, 2048);

    private static bool IsPlain1x1(Conv2d conv) =>
        !conv.transposed && conv.groups == 1 && conv.padding_type is null && conv.padding_mode == PaddingModes.Zeros
        && conv.kernel_size.All(k => k == 1) && conv.stride.All(s => s == 1) && conv.dilation.All(d => d == 1)
        && (conv.padding ?? []).All(p => p == 0);
}
