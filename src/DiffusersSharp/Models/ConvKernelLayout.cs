using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// Keeps a model's convolution kernels (its 4-D parameters larger than 1×1) in the memory layout its pass runs in: NHWC
/// strides when the model runs channels-last, contiguous NCHW otherwise. libtorch's oneDNN convolution first makes the
/// kernel contiguous in the input's layout (<c>weight.contiguous(memory_format)</c>), then reorders it into oneDNN's
/// blocked layout; a kernel kept in the other layout was therefore copied whole on every call. In a bf16 SD 1.5 UNet step
/// that was 20 kernels of 29.5 MB and 5 of 59 MB among others (~1 GB copied per step, in transient buffers that
/// fragmented the native heap). The same blocked kernel reaches oneDNN either way, so the results are the same.
/// <para>
/// A model with a <c>ChannelsLast</c> switch makes one at the end of its constructor. A model built for a checkpoint
/// (<see cref="Layers.LeaveUninitialized"/>: the kernels are still uninitialised) gets its kernels in its default
/// layout there by new strides over the same memory (nothing allocated or copied) before the load fills them; the
/// load copies each stored NCHW tensor into that layout.
/// The model's forward pass calls <see cref="Follow"/> first: when the layout was switched, or the parameters were
/// replaced (<c>to(dtype)</c>, <c>to(device)</c>) since the last call, the kernels are laid out again, their values
/// copied, in place (<c>set_</c>: the same <c>Parameter</c> objects, which optimisers and LoRA layers hold), and the
/// native heap is trimmed after (the old copies' memory, freed between live parameters, would stay resident).
/// A kernel replaced by a new parameter of the other layout between calls keeps working; it is copied per call again.
/// </para>
/// <para>
/// <see cref="Follow"/> also tells <see cref="Runtime.OneDnnConvolutions.BeforePass"/> whether the model has kernels of the
/// kinds libtorch's oneDNN gets wrong on some machines (read from the kernels' shapes, again when the parameters are
/// replaced or the layout changes): there, oneDNN is switched off before the pass.
/// </para>
/// </summary>
internal sealed class ConvKernelLayout
{
    /// <summary><c>DIFFUSERS_SHARP_NO_KERNEL_LAYOUT=1</c>: kernels stay as built (NCHW), as before 2026-12-04; for A/B timing.</summary>
    private static readonly bool Off = Environment.GetEnvironmentVariable("DIFFUSERS_SHARP_NO_KERNEL_LAYOUT") == "1";
    private readonly nn.Module _model;
    private readonly Func<Tensor> _probe;
    private readonly object _gate = new();
    private IntPtr _arrangedProbe;
    private bool _arrangedChannelsLast;
    private (IntPtr Probe, bool ChannelsLast, bool AtRisk) _risk;

    /// <param name="model">The model whose kernels follow its layout.</param>
    /// <param name="probe">One of its kernels (read at each call): a new handle there means the parameters were replaced.</param>
    /// <param name="channelsLast">The model's layout now (its default, at the end of the constructor).</param>
    public ConvKernelLayout(nn.Module model, Func<Tensor> probe, bool channelsLast)
    {
        _model = model;
        _probe = probe;
        // built contiguous (NCHW): only a channels-last model has anything to lay out before the load
        if (!Off && Layers.LeaveUninitialized && channelsLast) Arrange(channelsLast: true, keepValues: false);
    }

    /// <summary>
    /// Lays the kernels out for a pass in <paramref name="channelsLast"/> layout unless they already are, and switches
    /// oneDNN off where this machine's oneDNN gets the model's kinds of convolution wrong (<see cref="Runtime.OneDnnConvolutions"/>).
    /// </summary>
    public void Follow(bool channelsLast)
    {
        if (!Off && !IsArranged(channelsLast))
        {
            lock (_gate)
            {
                if (!IsArranged(channelsLast)) Arrange(channelsLast, keepValues: true);
            }
        }
        Runtime.OneDnnConvolutions.BeforePass(AtRisk(channelsLast));
    }

    /// <summary>Whether the model's kernels include kinds oneDNN can get wrong (<see cref="Runtime.OneDnnConvolutions.AtRisk"/>).</summary>
    private bool AtRisk(bool channelsLast)
    {
        var probe = _probe();
        var known = _risk;
        if (known.Probe == probe.Handle && known.ChannelsLast == channelsLast) return known.AtRisk;
        bool bf16Nchw = !channelsLast && probe.dtype == ScalarType.BFloat16;
        bool atRisk = Runtime.OneDnnConvolutions.AtRisk(_model.parameters().Where(p => p.dim() == 4).Select(p => p.shape), bf16Nchw);
        _risk = (probe.Handle, channelsLast, atRisk);
        return atRisk;
    }

    private bool IsArranged(bool channelsLast) => _probe().Handle == _arrangedProbe && channelsLast == _arrangedChannelsLast;

    private void Arrange(bool channelsLast, bool keepValues)
    {
        using var noGrad = torch.no_grad();
        // largest first: each copy then fits in the memory the previous kernel left (the peak grows by about one kernel)
        var kernels = _model.parameters()
            .Where(p => p.dim() == 4 && p.shape[2] * p.shape[3] > 1 && !(channelsLast ? Layers.IsChannelsLast(p) : p.is_contiguous()))
            .OrderByDescending(p => p.numel())
            .ToList();
        foreach (var p in kernels)
        {
            // the scope frees the intermediate views too: one left to the finaliser would keep the old memory alive
            using var scope = torch.NewDisposeScope();
            long[] s = p.shape;
            p.set_(!keepValues
                ? p.view(s[0], s[2], s[3], s[1]).permute(0, 3, 1, 2)   // the same (uninitialised) memory, read as NHWC
                : channelsLast ? Layers.ToChannelsLast(p) : p.contiguous());
        }
        _arrangedProbe = _probe().Handle;
        _arrangedChannelsLast = channelsLast;
        // the kernels' former memory is free now, most of it between live parameters: handed back so it does not stay
        // in the process's memory until transients happen to reuse it
        if (keepValues && kernels.Count > 0) Runtime.NativeSetup.TrimNativeHeap();
    }
}
