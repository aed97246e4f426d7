namespace DiffusersSharp.Loading.SingleFile;

/// <summary>
/// One module of a <see cref="KeyMap"/>: every original key under <see cref="Original"/> (a prefix ending in '.',
/// or one whole key) corresponds to the diffusers key under <see cref="Diffusers"/>, its tail changed by the first
/// of <see cref="Renames"/> that matches. A tail no rename matches keeps its name when <see cref="KeepOtherTails"/>
/// (modules named alike in both layouts, such as the UNet's transformers), and is an unknown key otherwise.
/// </summary>
public sealed record KeyRule(string Original, string Diffusers, IReadOnlyList<KeyRename> Renames, bool KeepOtherTails = true)
{
    /// <summary>A module whose keys are named alike under both prefixes.</summary>
    public KeyRule(string original, string diffusers) : this(original, diffusers, Array.Empty<KeyRename>()) { }

    /// <summary>True when the rule covers a module (the original ends in '.'), false for one whole key.</summary>
    public bool IsPrefix => Original.EndsWith('.');
}
