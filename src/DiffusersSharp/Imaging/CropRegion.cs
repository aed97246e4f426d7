namespace DiffusersSharp.Imaging;

/// <summary>
/// A rectangle of an image in PIL's box order (diffusers' <c>crops_coords</c>): columns <see cref="X1"/> to
/// <see cref="X2"/> and rows <see cref="Y1"/> to <see cref="Y2"/>, the ends excluded.
/// </summary>
public readonly record struct CropRegion(int X1, int Y1, int X2, int Y2)
{
    /// <summary>Its width, <c>X2 − X1</c>.</summary>
    public int Width => X2 - X1;
    /// <summary>Its height, <c>Y2 − Y1</c>.</summary>
    public int Height => Y2 - Y1;
    /// <summary>Whether pixel (<paramref name="x"/>, <paramref name="y"/>) lies inside.</summary>
    public bool Contains(int x, int y) => x >= X1 && x < X2 && y >= Y1 && y < Y2;
}
