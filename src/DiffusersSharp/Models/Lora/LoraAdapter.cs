using static TorchSharp.torch;

namespace DiffusersSharp.Models.Lora;

/// <summary>
/// One LoRA on one layer (diffusers' <c>LoRALinearLayer</c> / <c>LoRAConv2dLayer</c>): <see cref="Down"/> [rank, in(, kh, kw)]
/// and <see cref="Up"/> [out, rank(, 1, 1)], the update <c>Weight · (alpha / rank) · up(down(x))</c>; <c>alpha / rank</c>
/// only when the file gave an alpha (diffusers' default: factor 1). The layer owns the tensors (freed when removed).
/// </summary>
public sealed class LoraAdapter : IDisposable
{
    /// <summary>A LoRA from its two matrices; <paramref name="alpha"/> null = no alpha in the file.</summary>
    public LoraAdapter(string name, Tensor down, Tensor up, double? alpha, double weight = 1.0)
    {
        Name = name;
        Down = down;
        Up = up;
        Alpha = alpha;
        Rank = (int)down.shape[0];
        Weight = weight;
    }

    /// <summary>The adapter name (<c>"default"</c> for loads without a name, as diffusers 0.25.1's single slot).</summary>
    public string Name { get; }

    /// <summary>The down projection [rank, in] (linear) or [rank, in, kh, kw] (conv).</summary>
    public Tensor Down { get; }

    /// <summary>The up projection [out, rank] (linear) or [out, rank, 1, 1] (conv).</summary>
    public Tensor Up { get; }

    /// <summary>kohya's <c>network_alpha</c>, null when the file has none.</summary>
    public double? Alpha { get; }

    /// <summary>The rank (rows of <see cref="Down"/>).</summary>
    public int Rank { get; }

    /// <summary><c>alpha / rank</c>, or 1 without an alpha.</summary>
    public double Factor => Alpha is double a ? a / Rank : 1.0;

    /// <summary>The adapter's weight among the active ones (<c>SetAdapters</c>; 1.0 when loaded).</summary>
    public double Weight { get; set; }

    /// <summary>False when <c>SetAdapters</c> left this adapter out (kept loaded, not applied).</summary>
    public bool Active { get; set; } = true;

    /// <summary>Frees the two matrices.</summary>
    public void Dispose()
    {
        Down.Dispose();
        Up.Dispose();
    }
}
