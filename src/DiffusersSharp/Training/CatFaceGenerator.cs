using DiffusersSharp.Imaging;
using SkiaSharp;

namespace DiffusersSharp.Training;

/// <summary>
/// A procedural data set of small cartoon cat faces drawn with SkiaSharp: random fur colours and patterns (plain,
/// tabby stripes, patches, mask), head shapes, ear sizes and angles, eye shapes, colours and positions, whiskers and
/// backgrounds. Drawn at 8× the size and downsampled, so edges are smooth. Image i of seed s is the same on every run.
/// </summary>
public static class CatFaceGenerator
{
    private static readonly SKColor[] Furs =
    [
        new(236, 144, 52), new(210, 110, 40), new(128, 128, 134), new(90, 90, 96), new(40, 38, 42),
        new(245, 240, 232), new(150, 100, 62), new(232, 210, 170), new(180, 170, 160), new(200, 130, 90),
    ];
    private static readonly SKColor[] Irises = [new(110, 190, 60), new(230, 200, 40), new(80, 150, 230), new(220, 140, 40), new(150, 200, 120)];

    /// <summary>Draws cat face number <paramref name="index"/> of <paramref name="seed"/> at <paramref name="size"/>².</summary>
    public static Image Generate(int size, long seed, int index)
    {
        if (size <= 0) throw new DiffusersException($"cat image size must be positive, got {size}");
        var rng = new Random(ImageFolderDataset.MixSeed(seed, 7, index));
        const int s = 256;
        using var bmp = new SKBitmap(new SKImageInfo(s, s, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var c = new SKCanvas(bmp))
            Draw(c, s, rng);
        using var small = bmp.Resize(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul), SKFilterQuality.High);
        var px = new byte[size * size * 3];
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                var col = small.GetPixel(x, y);
                int o = (y * size + x) * 3;
                px[o] = col.Red; px[o + 1] = col.Green; px[o + 2] = col.Blue;
            }
        return new Image(size, size, 3, px);
    }

    /// <summary>The file name <see cref="WriteDataset"/> gives image <paramref name="index"/>: <c>cat_00000.png</c>….</summary>
    public static string FileName(int index) => $"cat_{index:D5}.png";

    /// <summary>
    /// Writes <paramref name="count"/> PNGs <c>cat_00000.png</c>… into <paramref name="dir"/>; <paramref name="cancellationToken"/>
    /// is checked before each image (an <see cref="OperationCanceledException"/> leaves the images written so far).
    /// </summary>
    public static void WriteDataset(string dir, int count, int size, long seed, IProgress<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        if (count <= 0) throw new DiffusersException($"cat count must be positive, got {count}");
        Directory.CreateDirectory(dir);
        for (int i = 0; i < count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Generate(size, seed, i).Save(Path.Combine(dir, FileName(i)));
            progress?.Report(i + 1);
        }
    }

    private static float U(Random r, double a, double b) => (float)(a + r.NextDouble() * (b - a));

    private static SKColor Jitter(Random r, SKColor c, int amount) => new(
        (byte)Math.Clamp(c.Red + r.Next(-amount, amount + 1), 0, 255),
        (byte)Math.Clamp(c.Green + r.Next(-amount, amount + 1), 0, 255),
        (byte)Math.Clamp(c.Blue + r.Next(-amount, amount + 1), 0, 255));

    private static SKColor Shade(SKColor c, float f) => new(
        (byte)Math.Clamp(c.Red * f, 0, 255), (byte)Math.Clamp(c.Green * f, 0, 255), (byte)Math.Clamp(c.Blue * f, 0, 255));

    private static void Draw(SKCanvas c, int s, Random r)
    {
        // Background: a pastel colour, plain, two-tone or dotted.
        var bg = new SKColor((byte)r.Next(120, 250), (byte)r.Next(120, 250), (byte)r.Next(120, 250));
        c.Clear(bg);
        using var paint = new SKPaint { IsAntialias = true };
        int bgKind = r.Next(3);
        if (bgKind == 1)
        {
            paint.Color = Shade(bg, 0.85f);
            c.DrawRect(0, s * U(r, 0.55, 0.8), s, s, paint);
        }
        else if (bgKind == 2)
        {
            paint.Color = Shade(bg, 0.88f);
            for (int i = 0; i < 14; i++) c.DrawCircle(U(r, 0, s), U(r, 0, s), U(r, 6, 16), paint);
        }

        var fur = Jitter(r, Furs[r.Next(Furs.Length)], 18);
        var dark = Shade(fur, fur.Red + fur.Green + fur.Blue < 200 ? 1.8f : 0.6f);
        float cx = s * U(r, 0.45, 0.55), cy = s * U(r, 0.52, 0.6);
        float hw = s * U(r, 0.30, 0.40), hh = s * U(r, 0.26, 0.34);
        var head = new SKRect(cx - hw, cy - hh, cx + hw, cy + hh);

        // Ears: triangles on the top of the head, tilted outwards by a random angle.
        float earW = hw * U(r, 0.45, 0.7), earH = hh * U(r, 0.7, 1.15), tilt = U(r, 0.0, 0.45);
        for (int side = -1; side <= 1; side += 2)
        {
            float bx = cx + side * hw * U(r, 0.45, 0.62), by = cy - hh * 0.55f;
            float tipX = bx + side * earH * MathF.Sin(tilt), tipY = by - earH * MathF.Cos(tilt);
            using var ear = new SKPath();
            ear.MoveTo(bx - earW / 2, by + earW * 0.2f);
            ear.LineTo(tipX, tipY);
            ear.LineTo(bx + earW / 2, by + earW * 0.2f);
            ear.Close();
            paint.Color = fur;
            c.DrawPath(ear, paint);
            using var inner = new SKPath();
            inner.MoveTo(bx - earW * 0.25f, by + earW * 0.05f);
            inner.LineTo(bx + (tipX - bx) * 0.7f, by + (tipY - by) * 0.7f);
            inner.LineTo(bx + earW * 0.25f, by + earW * 0.05f);
            inner.Close();
            paint.Color = new SKColor(240, 160, 170);
            c.DrawPath(inner, paint);
        }

        // Head.
        paint.Color = fur;
        if (r.Next(2) == 0) c.DrawOval(head, paint);
        else c.DrawRoundRect(head, hw * 0.7f, hh * 0.7f, paint);

        // Fur pattern, clipped to the head.
        c.Save();
        using (var clip = new SKPath()) { clip.AddOval(head); c.ClipPath(clip, antialias: true); }
        paint.Color = dark;
        switch (r.Next(4))
        {
            case 1: // tabby stripes on the forehead
                paint.Style = SKPaintStyle.Stroke;
                paint.StrokeWidth = s * 0.025f;
                paint.StrokeCap = SKStrokeCap.Round;
                for (int i = -1; i <= 1; i++)
                    c.DrawLine(cx + i * hw * 0.2f, cy - hh, cx + i * hw * 0.15f, cy - hh * 0.55f, paint);
                for (int side = -1; side <= 1; side += 2)
                    for (int i = 0; i < 2; i++)
                        c.DrawLine(cx + side * hw, cy + i * hh * 0.25f, cx + side * hw * 0.75f, cy + i * hh * 0.22f, paint);
                paint.Style = SKPaintStyle.Fill;
                break;
            case 2: // a patch over one side
                c.DrawCircle(cx + (r.Next(2) * 2 - 1) * hw * 0.6f, cy - hh * U(r, 0.2, 0.6), hw * U(r, 0.4, 0.7), paint);
                break;
            case 3: // a lighter muzzle / mask
                paint.Color = new SKColor(248, 244, 236);
                c.DrawOval(new SKRect(cx - hw * 0.5f, cy, cx + hw * 0.5f, cy + hh * 1.1f), paint);
                break;
        }
        c.Restore();

        // Eyes: round or almond, coloured iris, slit or round pupil.
        float eyeDx = hw * U(r, 0.32, 0.48), eyeY = cy - hh * U(r, 0.05, 0.3);
        float eyeR = hw * U(r, 0.14, 0.22), eyeSquash = U(r, 0.55, 1.0);
        var iris = Irises[r.Next(Irises.Length)];
        bool slit = r.Next(2) == 0;
        for (int side = -1; side <= 1; side += 2)
        {
            float ex = cx + side * eyeDx;
            paint.Color = new SKColor(20, 20, 20);
            c.DrawOval(ex, eyeY, eyeR * 1.12f, eyeR * eyeSquash * 1.12f, paint);
            paint.Color = iris;
            c.DrawOval(ex, eyeY, eyeR, eyeR * eyeSquash, paint);
            paint.Color = new SKColor(10, 10, 10);
            if (slit) c.DrawOval(ex, eyeY, eyeR * 0.22f, eyeR * eyeSquash * 0.9f, paint);
            else c.DrawCircle(ex, eyeY, eyeR * eyeSquash * 0.55f, paint);
            paint.Color = SKColors.White;
            c.DrawCircle(ex + eyeR * 0.3f, eyeY - eyeR * eyeSquash * 0.35f, eyeR * 0.18f, paint);
        }

        // Nose and mouth.
        float ny = cy + hh * U(r, 0.18, 0.32), nw = hw * U(r, 0.09, 0.14);
        using (var nose = new SKPath())
        {
            nose.MoveTo(cx - nw, ny - nw * 0.5f);
            nose.LineTo(cx + nw, ny - nw * 0.5f);
            nose.LineTo(cx, ny + nw * 0.6f);
            nose.Close();
            paint.Color = new SKColor(230, 110, 130);
            c.DrawPath(nose, paint);
        }
        paint.Style = SKPaintStyle.Stroke;
        paint.StrokeWidth = s * 0.012f;
        paint.StrokeCap = SKStrokeCap.Round;
        paint.Color = new SKColor(50, 30, 30);
        c.DrawLine(cx, ny + nw * 0.6f, cx, ny + nw * 1.4f, paint);
        c.DrawArc(new SKRect(cx - nw * 1.6f, ny + nw * 0.4f, cx, ny + nw * 2.0f), 0, 180, false, paint);
        c.DrawArc(new SKRect(cx, ny + nw * 0.4f, cx + nw * 1.6f, ny + nw * 2.0f), 0, 180, false, paint);

        // Whiskers: three per side, fanned.
        paint.StrokeWidth = s * 0.008f;
        paint.Color = fur.Red + fur.Green + fur.Blue > 540 ? new SKColor(90, 90, 90) : new SKColor(250, 250, 250);
        float wl = hw * U(r, 0.6, 0.95), spread = U(r, 0.12, 0.3);
        for (int side = -1; side <= 1; side += 2)
            for (int i = -1; i <= 1; i++)
            {
                float sx = cx + side * nw * 1.8f, sy = ny + nw * 0.8f;
                float a = i * spread;
                c.DrawLine(sx, sy, sx + side * wl * MathF.Cos(a), sy + wl * MathF.Sin(a), paint);
            }
        paint.Style = SKPaintStyle.Fill;
    }
}
