namespace DiffusersSharp.Loading.SingleFile;

/// <summary>
/// A rename inside one module of a <see cref="KeyRule"/>: the tail of an original key and its diffusers tail(s).
/// A tail ending in '.' renames a sub-module (<c>in_layers.0.</c> → <c>norm1.</c>, every tensor under it); any other
/// tail names one tensor (<c>attn.in_proj_weight</c> → the q, k, v weights). No diffusers tail: the tensor is not
/// part of the diffusers model and is skipped (OpenCLIP's <c>logit_scale</c>).
/// </summary>
public sealed record KeyRename(string Original, IReadOnlyList<string> Diffusers, TensorChange Change = TensorChange.None)
{
    /// <summary>A rename to one diffusers tail.</summary>
    public KeyRename(string original, string diffusers, TensorChange change = TensorChange.None) : this(original, [diffusers], change) { }

    /// <summary>A tensor (or sub-module, ending in '.') of the original file that diffusers does not use.</summary>
    public static KeyRename Unused(string original) => new(original, Array.Empty<string>());

    /// <summary>True when the rename covers a sub-module (the original tail ends in '.').</summary>
    public bool IsPrefix => Original.EndsWith('.');
}
