using System.CommandLine;
using System.Globalization;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// The Stable Diffusion XL options of <c>diffusers generate</c>: <c>--prompt-2 --negative-prompt-2 --refiner
/// --high-noise-frac --original-size W,H --crop X,Y --target-size W,H</c>. An SDXL folder also takes the Stable Diffusion
/// options (<see cref="StableDiffusionOptions"/>); the pipeline follows them as for SD (txt2img, <c>--init-image</c>
/// img2img, <c>--mask</c> inpainting). <c>--refiner</c> runs the base over the first <c>--high-noise-frac</c> of the
/// schedule and the refiner over the rest (diffusers' ensemble of experts).
/// </summary>
public sealed class StableDiffusionXLOptions
{
    /// <summary>The default share of the schedule the base runs before the refiner takes over (diffusers' docs: 0.8).</summary>
    public const double DefaultHighNoiseFrac = 0.8;

    private readonly Option<string?> _prompt2 = new("--prompt-2") { Description = "Prompt for the second text encoder (SDXL; default: --prompt)" };
    private readonly Option<string?> _negative2 = new("--negative-prompt-2") { Description = "Negative prompt for the second text encoder (SDXL)" };
    private readonly Option<string?> _refiner = new("--refiner") { Description = "SDXL refiner folder or Hub id (org/name@rev: that revision; default main): the base denoises the first --high-noise-frac, the refiner the rest" };
    private readonly Option<double?> _highNoiseFrac = new("--high-noise-frac") { Description = $"Share of the schedule the base runs before --refiner, in (0, 1) (default {DefaultHighNoiseFrac})" };
    private readonly Option<string?> _originalSize = new("--original-size") { Description = "SDXL micro-conditioning original size W,H (default: the image size)" };
    private readonly Option<string?> _crop = new("--crop") { Description = "SDXL micro-conditioning crop top-left X,Y (default 0,0)" };
    private readonly Option<string?> _targetSize = new("--target-size") { Description = "SDXL micro-conditioning target size W,H (default: the image size)" };

    /// <summary>The parsed values (all optional).</summary>
    public sealed record Values(string? Prompt2 = null, string? NegativePrompt2 = null, string? Refiner = null,
        double? HighNoiseFrac = null, string? OriginalSize = null, string? Crop = null, string? TargetSize = null)
    {
        /// <summary>The first option given, for messages (null when none).</summary>
        public string? FirstGiven =>
            Prompt2 is not null ? "--prompt-2" : NegativePrompt2 is not null ? "--negative-prompt-2" : Refiner is not null ? "--refiner"
            : HighNoiseFrac is not null ? "--high-noise-frac" : OriginalSize is not null ? "--original-size" : Crop is not null ? "--crop"
            : TargetSize is not null ? "--target-size" : null;

        /// <summary>Whether any SDXL option was given.</summary>
        public bool Any => FirstGiven is not null;

        /// <summary>--original-size as diffusers' (height, width).</summary>
        public (int Height, int Width)? OriginalHeightWidth => Swap(Pair("--original-size", OriginalSize, "W,H", allowZero: false));

        /// <summary>--crop as diffusers' (top, left).</summary>
        public (int Top, int Left) CropTopLeft => Swap(Pair("--crop", Crop, "X,Y", allowZero: true)) ?? (0, 0);

        /// <summary>--target-size as diffusers' (height, width).</summary>
        public (int Height, int Width)? TargetHeightWidth => Swap(Pair("--target-size", TargetSize, "W,H", allowZero: false));

        /// <summary>What can be checked before loading a model (with the Stable Diffusion options of the same call).</summary>
        public void CheckWithoutModel(StableDiffusionOptions.Values sd)
        {
            _ = OriginalHeightWidth;
            _ = CropTopLeft;
            _ = TargetHeightWidth;
            if (HighNoiseFrac is double f && !(f > 0 && f < 1))
                throw new UserException($"--high-noise-frac must be in (0, 1), got {f.ToString(CultureInfo.InvariantCulture)}");
            if (HighNoiseFrac is not null && Refiner is null)
                throw new UserException("--high-noise-frac needs --refiner (it is where the refiner takes over)");
            if (Refiner is not null && sd.InitImage is not null)
                throw new UserException("--refiner runs after SDXL text-to-image; it does not combine with --init-image / --mask");
            if (Refiner is { Length: 0 }) throw new UserException("--refiner: give a refiner folder or Hub id");
        }

        private static (int, int)? Swap((int A, int B)? p) => p is { } v ? (v.B, v.A) : null;

        private static (int A, int B)? Pair(string option, string? text, string form, bool allowZero)
        {
            if (text is null) return null;
            var parts = text.Split(',', 'x');
            if (parts.Length == 2
                && int.TryParse(parts[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int a)
                && int.TryParse(parts[1].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int b)
                && a <= Image.MaxSide * 8 && b <= Image.MaxSide * 8 && (allowZero || (a > 0 && b > 0)))
                return (a, b);
            throw new UserException(
                $"{option} '{text}': expected {form}, two {(allowZero ? "non-negative" : "positive")} whole numbers up to {Image.MaxSide * 8} (e.g. {(allowZero ? "0,0" : "1024,1024")})");
        }
    }

    /// <summary>Creates the option set.</summary>
    public static StableDiffusionXLOptions Create() => new();

    /// <summary>Adds the options to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { _prompt2, _negative2, _refiner, _highNoiseFrac, _originalSize, _crop, _targetSize })
            cmd.Options.Add(o);
    }

    /// <summary>Reads the parsed values.</summary>
    public Values Read(ParseResult pr) => new(pr.GetValue(_prompt2), pr.GetValue(_negative2), pr.GetValue(_refiner),
        pr.GetValue(_highNoiseFrac), pr.GetValue(_originalSize), pr.GetValue(_crop), pr.GetValue(_targetSize));

    /// <summary>Whether <paramref name="className"/> is one of the SDXL pipelines 'generate' runs.</summary>
    public static bool IsStableDiffusionXL(string className) =>
        className is StableDiffusionXLPipeline.Name or StableDiffusionXLImg2ImgPipeline.Name or StableDiffusionXLInpaintPipeline.Name;
}
