namespace DiffusersSharp.Models;

/// <summary>
/// One block's entry of diffusers' <c>transformer_layers_per_block</c> / <c>reverse_transformer_layers_per_block</c>:
/// an int (every attention layer of the block has that many transformer blocks) or a list (a depth per layer, the
/// nested form of asymmetric UNets: <c>[[1, 2], [4, 10]]</c>). An int converts implicitly, so
/// <c>TransformerLayersPerBlock = [1, 2, 10]</c> reads as the JSON does; <see cref="PerLayer(int[])"/> makes a list.
/// </summary>
public readonly struct TransformerDepth : IEquatable<TransformerDepth>
{
    private readonly int _depth;
    private readonly int[]? _perLayer;

    private TransformerDepth(int depth, int[]? perLayer)
    {
        _depth = depth;
        _perLayer = perLayer;
    }

    /// <summary>An int entry: <paramref name="depth"/> transformer blocks in every layer of the block.</summary>
    public static implicit operator TransformerDepth(int depth) => new(depth, null);

    /// <summary>A list entry: the depth of each layer of the block, in order.</summary>
    public static TransformerDepth PerLayer(params int[] depths)
    {
        ArgumentNullException.ThrowIfNull(depths);
        return new(0, [.. depths]);
    }

    /// <summary>Whether the entry is a list (the nested form), even of one value.</summary>
    public bool IsPerLayer => _perLayer is not null;

    /// <summary>
    /// The depths as the blocks take them (<see cref="UNetBlockArgs.TransformerLayersPerBlock"/>): one value for every
    /// layer (an int entry), or one per layer (a list entry, as written).
    /// </summary>
    public int[] Depths => _perLayer is null ? [_depth] : [.. _perLayer];

    /// <summary>The depth of layer <paramref name="layer"/>; a list entry too short for it throws.</summary>
    public int At(int layer) => _perLayer is null ? _depth : _perLayer[layer];

    /// <summary>The entry as JSON writes it: <c>2</c> or <c>[1, 2]</c>.</summary>
    public override string ToString() => _perLayer is null ? _depth.ToString(System.Globalization.CultureInfo.InvariantCulture)
        : $"[{string.Join(", ", _perLayer)}]";

    /// <inheritdoc/>
    public bool Equals(TransformerDepth other) =>
        _perLayer is null ? other._perLayer is null && _depth == other._depth
        : other._perLayer is not null && _perLayer.AsSpan().SequenceEqual(other._perLayer);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is TransformerDepth d && Equals(d);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        if (_perLayer is null) return _depth;
        var h = new HashCode();
        h.Add(-1);
        foreach (var d in _perLayer) h.Add(d);
        return h.ToHashCode();
    }

    /// <summary>Value equality: the same form and the same depths.</summary>
    public static bool operator ==(TransformerDepth a, TransformerDepth b) => a.Equals(b);

    /// <summary>Value inequality.</summary>
    public static bool operator !=(TransformerDepth a, TransformerDepth b) => !a.Equals(b);

    /// <summary>Every entry of <paramref name="depths"/> as an int entry.</summary>
    public static TransformerDepth[] PerBlock(int[] depths) => [.. depths.Select(d => (TransformerDepth)d)];
}
