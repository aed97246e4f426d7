namespace DiffusersSharp.Text;

/// <summary>transformers' <c>padding</c> argument.</summary>
public enum PaddingStrategy
{
    /// <summary><c>padding=False</c> / "do_not_pad".</summary>
    DoNotPad,
    /// <summary><c>padding=True</c> / "longest": pad to the longest prompt of the batch.</summary>
    Longest,
    /// <summary><c>padding="max_length"</c>: pad to <c>max_length</c> (default: model_max_length).</summary>
    MaxLength,
}
