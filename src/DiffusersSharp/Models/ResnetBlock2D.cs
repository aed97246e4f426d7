using DiffusersSharp.Models.Lora;
using DiffusersSharp.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>ResnetBlock2D</c> (models/resnet.py, v0.25.1): GroupNorm → act → [up/down] → conv1 →
/// + time embedding (default) → GroupNorm → ×(1+scale)+shift (scale_shift) → act → dropout → conv2, plus the
/// (optionally 1×1-projected) input, divided by <c>output_scale_factor</c>. Weight names: <c>norm1</c>,
/// <c>conv1</c>, <c>time_emb_proj</c>, <c>norm2</c>, <c>conv2</c>, <c>conv_shortcut</c>.
/// Supported <c>time_embedding_norm</c>: "default", "scale_shift"; <c>kernel</c>: null or "sde_vp" (the FIR
/// kernel and the spatial norm are not ported and are refused; the ada_group form is <see cref="ResnetBlockCondNorm2D"/>, which the K blocks build).
/// </summary>
public sealed class ResnetBlock2D : nn.Module
{
    private readonly GroupNorm norm1;
    private readonly LoRACompatibleConv conv1;
    private readonly LoRACompatibleLinear? time_emb_proj;
    private readonly GroupNorm norm2;
    private readonly LoRACompatibleConv conv2;
    private readonly LoRACompatibleConv? conv_shortcut;
    private readonly Upsample2D? upsample;
    private readonly Downsample2D? downsample;

    private readonly Func<Tensor, Tensor> _act;          // leaves its input alone (used on the shared temb)
    private readonly Func<Tensor, Tensor> _actOwned;     // may overwrite its input (fresh tensors only)
    private readonly bool _sdeVp;
    private readonly bool _silu;                         // the activation is SiLU: norm (+ temb) + act may run fused
    private readonly long _groups1, _groups2;
    private readonly double _eps;

    /// <summary>diffusers' <c>in_channels</c>.</summary>
    public int InChannels { get; }
    /// <summary>diffusers' <c>out_channels</c> (= in_channels when not given).</summary>
    public int OutChannels { get; }
    /// <summary>
    /// diffusers' <c>time_embedding_norm</c>: "default" (time embedding added) or "scale_shift" (FiLM-style).
    /// </summary>
    public string TimeEmbeddingNorm { get; }
    /// <summary>diffusers' <c>output_scale_factor</c>: the output is divided by this.</summary>
    public double OutputScaleFactor { get; }
    /// <summary>diffusers' <c>dropout</c> probability before conv2 (only active in training).</summary>
    public double Dropout { get; }
    /// <summary>
    /// diffusers' <c>skip_time_act</c>: the time embedding is projected without the activation first.
    /// </summary>
    public bool SkipTimeAct { get; }
    /// <summary>diffusers' <c>up</c>: the block upsamples ×2 (nearest) before conv1.</summary>
    public bool Up { get; }
    /// <summary>diffusers' <c>down</c>: the block downsamples ×2 before conv1.</summary>
    public bool Down { get; }

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public ResnetBlock2D(int inChannels, int? outChannels = null, bool convShortcut = false, double dropout = 0.0,
        int? tembChannels = 512, int groups = 32, int? groupsOut = null, bool preNorm = true, double eps = 1e-6,
        string nonLinearity = "swish", bool skipTimeAct = false, string timeEmbeddingNorm = "default",
        string? kernel = null, double outputScaleFactor = 1.0, bool? useInShortcut = null, bool up = false,
        bool down = false, bool convShortcutBias = true, int? conv2dOutChannels = null)
        : base(nameof(ResnetBlock2D))
    {
        _ = convShortcut; // diffusers 0.25.1 stores it but always uses a 1×1 shortcut
        _ = preNorm;      // diffusers forces pre_norm = True
        InChannels = inChannels;
        int outCh = outChannels ?? inChannels;
        OutChannels = outCh;
        TimeEmbeddingNorm = timeEmbeddingNorm;
        OutputScaleFactor = outputScaleFactor;
        Dropout = dropout;
        SkipTimeAct = skipTimeAct;
        Up = up;
        Down = down;
        if (timeEmbeddingNorm is not ("default" or "scale_shift"))
            throw new ArgumentException(timeEmbeddingNorm is "ada_group" or "spatial"
                ? $"ResnetBlock2D: time_embedding_norm '{timeEmbeddingNorm}' is not supported by DiffusersSharp"
                : $"ResnetBlock2D: unknown time_embedding_norm '{timeEmbeddingNorm}' (expected default or scale_shift)");

        norm1 = Layers.GroupNorm(groups, inChannels, eps);
        conv1 = new LoRACompatibleConv(inChannels, outCh, kernelSize: 3, stride: 1, padding: 1);
        if (tembChannels is int tc)
            time_emb_proj = new LoRACompatibleLinear(tc, timeEmbeddingNorm == "scale_shift" ? 2 * outCh : outCh);
        norm2 = Layers.GroupNorm(groupsOut ?? groups, outCh, eps);
        int conv2Out = conv2dOutChannels ?? outCh;
        conv2 = new LoRACompatibleConv(outCh, conv2Out, kernelSize: 3, stride: 1, padding: 1);
        _act = Activations.Get(nonLinearity);
        _actOwned = Activations.Get(nonLinearity, mayOverwriteInput: true);
        _silu = nonLinearity.ToLowerInvariant() is "swish" or "silu";
        (_groups1, _groups2, _eps) = (groups, groupsOut ?? groups, eps);

        if (kernel is not (null or "sde_vp"))
            throw new ArgumentException($"ResnetBlock2D: kernel '{kernel}' is not supported by DiffusersSharp (supported: none, sde_vp)");
        _sdeVp = kernel == "sde_vp";
        if (up && !_sdeVp) upsample = new Upsample2D(inChannels, useConv: false);
        else if (down && !_sdeVp) downsample = new Downsample2D(inChannels, useConv: false, padding: 1, name: "op");

        bool shortcut = useInShortcut ?? inChannels != conv2Out;
        if (shortcut)
            conv_shortcut = new LoRACompatibleConv(inChannels, conv2Out, kernelSize: 1, stride: 1, padding: 0, bias: convShortcutBias);
        RegisterComponents();
    }

    /// <param name="consumeInput">
    /// The caller hands <paramref name="inputTensor"/> over (the ownership rule's exception): the block disposes it as
    /// soon as both branches are past it. With a 1×1 shortcut the shortcut then goes first, right after the first
    /// norm, so that the input is not alive during conv1 (whose channels-last kernel makes a padded copy of its own
    /// input): at 512² in the SD VAE decoder that lowers the peak by 268 MB. Where the input has at least as many channels
    /// as conv1 and conv2 together (a channel-halving block, as the VAE decoder's first 512² one) and both convolutions run
    /// on the Winograd path, they write into the input's own memory (conv1 over the normed input, band by band; conv2
    /// after it), and the output is the shortcut's tensor with conv2's added: no 64-128 MB conv1 or conv2 output of its
    /// own at 512² (SD 1.5's decoder in bf16: the live peak +264 → +206 MiB).
    /// </param>
    public Tensor Forward(Tensor inputTensor, Tensor? temb, bool consumeInput = false)
    {
        // Each intermediate is freed as soon as the next one exists (Chain), as Python's refcounting does, so a block
        // holds at most two activations besides its input: at 512² in the VAE decoder one is 134-268 MB. In-place
        // ops (no autograd only) touch only the block's own intermediates.
        using var scope = torch.NewDisposeScope();
        bool inPlace = Activations.InPlaceOk;
        bool shortcutFirst = consumeInput && conv_shortcut is not null && !Up && !Down;
        bool fusedNorm1 = _silu && FusedGroupNorm.Applies(inputTensor, null, norm1.weight, norm1.bias);
        // a handed-over input that only norm1 still needs after the shortcut: the shortcut goes first and norm1 + SiLU
        // overwrite the input (at 512² in the SD VAE decoder a 268 MB output not allocated; with norm2 in place, the
        // decode's own peak +904 → +776 MB)
        bool norm1InPlace = shortcutFirst && fusedNorm1 && inPlace;
        var h = new Chain(inputTensor, handedOver: norm1InPlace);
        var residual = new Chain(inputTensor, handedOver: consumeInput && !norm1InPlace);

        // norm + SiLU (+ the time embedding before norm2, below): one kernel where it applies (FusedGroupNorm)
        if (norm1InPlace)
        {
            residual.Then(x => Layers.Pointwise(conv_shortcut!, x));
            h.Then(x => FusedGroupNorm.Run(x, null, _groups1, norm1.weight, norm1.bias, _eps, silu: true, inPlace: true));
        }
        else
        {
            if (fusedNorm1)
                h.Then(x => FusedGroupNorm.Run(x, null, _groups1, norm1.weight, norm1.bias, _eps, silu: true));
            else
                h.Then(x => _actOwned(norm1.forward(x)));
            if (shortcutFirst)
                residual.Then(x => Layers.Pointwise(conv_shortcut!, x));
        }

        if (Up || Down)
        {
            residual.Then(x => Resample(x, Up));
            h.Then(x => Resample(x, Up));
        }

        // conv1 (and below conv2) into the handed-over input's memory, where the Winograd path allows it: see consumeInput
        Tensor? inInput = null;
        if (norm1InPlace && OutChannels + conv2.OutChannels <= InChannels && conv1.RunsInto(h.Value))
        {
            var into = Layers.ChannelsLastIn(h.Value, OutChannels, offset: 0);
            if (WinogradConvolution.OverwritesInput(h.Value, into)) inInput = into;
            else into.Dispose();
        }
        if (inInput is { } conv1Output)
            h.Then(x =>
            {
                conv1.ForwardInto(x, conv1Output);
                return conv1Output;
            });
        else
            h.Then(conv1.forward);

        if (time_emb_proj is not null && temb is not null)
        {
            if (!SkipTimeAct) temb = _act(temb);
            temb = time_emb_proj.forward(temb).unsqueeze(-1).unsqueeze(-1);
        }

        var tembAdded = TimeEmbeddingNorm == "default" ? temb : null;
        if (_silu && TimeEmbeddingNorm == "default" && FusedGroupNorm.Applies(h.Value, tembAdded, norm2.weight, norm2.bias))
        {
            // conv1's output is the block's own: overwritten where no gradient is wanted
            bool norm2InPlace = inPlace && h.OwnsValue;
            h.Then(x => FusedGroupNorm.Run(x, tembAdded, _groups2, norm2.weight, norm2.bias, _eps, silu: true, inPlace: norm2InPlace));
        }
        else
        {
            if (tembAdded is not null)
                h.Then(x => inPlace ? x.add_(tembAdded) : x + tembAdded);

            h.Then(norm2.forward);

            if (temb is not null && TimeEmbeddingNorm == "scale_shift")
            {
                var chunks = temb.chunk(2, dim: 1);
                var (scale, shift) = (chunks[0], chunks[1]);
                h.Then(x => inPlace ? x.mul_(scale + 1).add_(shift) : x * (scale + 1) + shift);
            }

            h.Then(_actOwned);
        }
        if (Dropout > 0 && training)
            h.Then(x => nn.functional.dropout(x, Dropout, training: true));
        bool outputInInput = inInput is not null && ReferenceEquals(h.Value, inInput) && conv2.RunsInto(h.Value);
        if (outputInInput)
            h.Then(x =>
            {
                var into = Layers.ChannelsLastIn(x, conv2.OutChannels, offset: x.numel());
                conv2.ForwardInto(x, into);
                return into;
            });
        else
            h.Then(conv2.forward);

        if (conv_shortcut is not null && !shortcutFirst)
            residual.Then(x => Layers.Pointwise(conv_shortcut, x));

        Tensor output;
        if (outputInInput)
        {
            // the shortcut's tensor takes the sum (input_tensor + hidden_states, as diffusers adds), and the input's
            // memory, which held conv1's and conv2's outputs, goes
            output = residual.Value.add_(h.Value);
            h.Release();
        }
        else
        {
            h.Then(x => inPlace ? x.add_(residual.Value) : residual.Value + x);
            residual.Release();
            output = h.Value;
        }
        if (OutputScaleFactor != 1.0)
            output = inPlace ? output.div_(OutputScaleFactor) : output / OutputScaleFactor;
        return scope.MoveToOuter(output);
    }

    private Tensor Resample(Tensor x, bool up)
    {
        if (_sdeVp)
            return up
                ? nn.functional.interpolate(x, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Nearest)
                : nn.functional.avg_pool2d(x, new long[] { 2, 2 }, new long[] { 2, 2 });
        return up ? upsample!.Forward(x) : downsample!.Forward(x);
    }
}
