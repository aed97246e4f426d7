namespace DiffusersSharp.Loading.SingleFile;

/// <summary>
/// One tensor of the original file and the diffusers tensor(s) it is: usually one key each; none when diffusers
/// does not use it; several for a fused tensor (<see cref="TensorChange.Split"/>).
/// </summary>
public sealed record KeyMapping(string Original, IReadOnlyList<string> Diffusers, TensorChange Change)
{
    /// <summary>True when diffusers has no tensor for the original key (it is skipped).</summary>
    public bool IsUnused => Diffusers.Count == 0;
}
