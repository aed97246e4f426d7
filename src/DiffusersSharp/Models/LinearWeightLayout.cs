using DiffusersSharp.Models.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// Keeps a text encoder's linear weights in the memory layout its products run fastest in: column-major when they are
/// fp32 on the CPU (the [out, in] weight stored as its transpose, [in, out] row-major: strides (1, out)), row-major
/// (contiguous, as built) otherwise. <c>F.linear(x, W)</c> hands libtorch's fp32 <c>addmm</c> to MKL's sgemm with
/// <c>Wᵀ</c> as its second operand. Stored row-major, that operand is transposed, and MKL copies it whole into its blocked
/// layout on every call ("packing"). With a text encoder's 77 rows that copy is a large part of the call: ~38% of the
/// GEMM time in a perf profile of the fp32 CLIP encoder of SD 2.x. Stored column-major, <c>Wᵀ</c> is a plain row-major
/// matrix, which MKL reads with cheaper copies. Measured (<c>bench -- linear-layout</c>, CLIP's shapes, weights
/// streamed from memory): 9-18% less time a call, the same bits.
/// bf16 (oneDNN) gained nothing that way (3% slower in sum), nor did the UNets' fp32 layers (8192 rows: 0-3% a layer, the
/// SD 1.5 step no faster): those stay as built.
/// <para>
/// The model makes one at the end of its constructor. A model built for a checkpoint in fp32
/// (<see cref="Layers.LeaveUninitialized"/>: the weights are still uninitialised) gets its weights column-major there,
/// by new strides over the same memory (nothing allocated or copied), before the load fills them; the load copies each
/// stored row-major tensor into that layout by a transposing copy (<see cref="Loading.WeightLoader.CopyWeight"/>). The forward pass calls
/// <see cref="Follow"/> first: when the parameters were replaced since the last call (<c>to(dtype)</c>,
/// <c>to(device)</c>), the weights are laid out again for their new dtype and device, their values copied, in place
/// (<c>set_</c>: the same <c>Parameter</c> objects, which LoRA layers hold), and the native heap is trimmed after.
/// Saved files hold the standard row-major order (<see cref="Loading.SafetensorsFile.Save"/> writes contiguous copies).
/// </para>
/// </summary>
internal sealed class LinearWeightLayout
{
    /// <summary><c>DIFFUSERS_SHARP_NO_LINEAR_LAYOUT=1</c>: weights stay as built (row-major), as before 2026-12-05; for A/B timing.</summary>
    private static readonly bool Off = Environment.GetEnvironmentVariable("DIFFUSERS_SHARP_NO_LINEAR_LAYOUT") == "1";
    private readonly nn.Module _model;
    private readonly LoRACompatibleLinear _probe;
    private readonly object _gate = new();
    private IntPtr _arrangedProbe;

    /// <param name="model">The model whose linear layers (every <see cref="LoRACompatibleLinear"/> in it) follow.</param>
    public LinearWeightLayout(nn.Module model)
    {
        _model = model;
        _probe = model.modules().OfType<LoRACompatibleLinear>().FirstOrDefault()
            ?? throw new ArgumentException($"{model.GetType().Name} has no linear layers to lay out", nameof(model));
        if (!Off && Layers.LeaveUninitialized && WantsColumnMajor(_probe.Weight)) Arrange(keepValues: false);
    }

    /// <summary>True for a weight that runs column-major: fp32 on the CPU.</summary>
    public static bool WantsColumnMajor(Tensor weight) =>
        weight.dtype == ScalarType.Float32 && weight.device_type == DeviceType.CPU;

    /// <summary>Lays the weights out for their dtype and device unless they already are (after the parameters were replaced).</summary>
    public void Follow()
    {
        if (Off || _probe.Weight.Handle == _arrangedProbe) return;
        lock (_gate)
        {
            if (_probe.Weight.Handle != _arrangedProbe) Arrange(keepValues: true);
        }
    }

    private void Arrange(bool keepValues)
    {
        using var noGrad = torch.no_grad();
        bool columnMajor = WantsColumnMajor(_probe.Weight);
        // largest first: each copy then fits in the memory the previous weight left (the peak grows by about one weight)
        var weights = _model.modules().OfType<LoRACompatibleLinear>().Select(l => l.Weight)
            .Where(w => w.dim() == 2 && (columnMajor ? !Loading.WeightLoader.IsColumnMajor(w) : !w.is_contiguous()))
            .OrderByDescending(w => w.numel())
            .ToList();
        foreach (var w in weights)
        {
            // the scope frees the intermediate views too: one left to the finaliser would keep the old memory alive
            using var scope = torch.NewDisposeScope();
            long rows = w.shape[0], cols = w.shape[1];
            w.set_(!keepValues
                ? w.view(cols, rows).t()   // the same (uninitialised) memory, read as the transpose
                : columnMajor ? w.t().contiguous().t() : w.contiguous());
        }
        _arrangedProbe = _probe.Weight.Handle;
        // the weights' former memory is free now, most of it between live parameters: handed back to the system
        if (keepValues && weights.Count > 0) Runtime.NativeSetup.TrimNativeHeap();
    }
}
