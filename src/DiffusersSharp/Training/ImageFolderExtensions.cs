namespace DiffusersSharp.Training;

/// <summary>
/// The files datasets' <c>imagefolder</c> loader takes for images (datasets 5.0.1's <c>IMAGE_EXTENSIONS</c>: every
/// extension PIL opens, and a file whose extension before its last one is such, as <c>x.png.txt</c>, as
/// <c>_split_files_and_metadata_and_archives</c> takes it), with the image format PIL reads each as where
/// DiffusersSharp does not decode it (those files are refused, not skipped: the script would train on them).
/// </summary>
internal static class ImageFolderExtensions
{
    // extension → null where DiffusersSharp decodes the format, else the format PIL reads it as
    private static readonly Dictionary<string, string?> Formats = new(StringComparer.Ordinal)
    {
        [".blp"] = "BLP",
        [".bmp"] = null,
        [".dib"] = null,
        [".bufr"] = "BUFR",
        [".cur"] = null,
        [".pcx"] = "PCX",
        [".dcx"] = "DCX",
        [".dds"] = "DDS",
        [".ps"] = "EPS",
        [".eps"] = "EPS",
        [".fit"] = "FITS",
        [".fits"] = "FITS",
        [".fli"] = "FLI/FLC",
        [".flc"] = "FLI/FLC",
        [".ftc"] = "FTEX",
        [".ftu"] = "FTEX",
        [".gbr"] = "GBR",
        [".gif"] = null,
        [".grib"] = "GRIB",
        [".png"] = null,
        [".apng"] = null,
        [".jp2"] = "JPEG 2000",
        [".j2k"] = "JPEG 2000",
        [".jpc"] = "JPEG 2000",
        [".jpf"] = "JPEG 2000",
        [".jpx"] = "JPEG 2000",
        [".j2c"] = "JPEG 2000",
        [".icns"] = "ICNS",
        [".ico"] = null,
        [".im"] = "IM",
        [".iim"] = "IPTC",
        [".tif"] = null,
        [".tiff"] = null,
        [".jfif"] = null,
        [".jpe"] = null,
        [".jpg"] = null,
        [".jpeg"] = null,
        [".mpg"] = "MPEG",
        [".mpeg"] = "MPEG",
        [".msp"] = "MSP",
        [".pcd"] = "PCD",
        [".pxr"] = "PIXAR",
        [".pbm"] = "Netpbm (PPM/PGM/PBM)",
        [".pgm"] = "Netpbm (PPM/PGM/PBM)",
        [".ppm"] = "Netpbm (PPM/PGM/PBM)",
        [".pnm"] = "Netpbm (PPM/PGM/PBM)",
        [".psd"] = "PSD",
        [".bw"] = "SGI",
        [".rgb"] = "SGI",
        [".rgba"] = "SGI",
        [".sgi"] = "SGI",
        [".ras"] = "Sun raster",
        [".tga"] = "TGA",
        [".icb"] = "TGA",
        [".vda"] = "TGA",
        [".vst"] = "TGA",
        [".webp"] = null,
        [".wmf"] = "WMF",
        [".emf"] = "EMF",
        [".xbm"] = "XBM",
        [".xpm"] = "XPM",
    };

    /// <summary>datasets' list, in its order (the names <c>Formats</c> holds).</summary>
    public static IEnumerable<string> All => Formats.Keys;

    // the extension that makes the file an image: its last one, else the one before it
    private static string? ImageExtension(string path)
    {
        string name = Path.GetFileName(path);
        string last = Path.GetExtension(name).ToLowerInvariant();
        if (Formats.ContainsKey(last)) return last;
        string second = Path.GetExtension(Path.GetFileNameWithoutExtension(name)).ToLowerInvariant();
        return Formats.ContainsKey(second) ? second : null;
    }

    /// <summary>Whether datasets' imagefolder loader takes the file for an image.</summary>
    public static bool IsImage(string path) => ImageExtension(path) is not null;

    /// <summary>The format PIL reads a file of this extension as, where DiffusersSharp does not decode it; else null.</summary>
    public static string? NotDecodedFormat(string path) => ImageExtension(path) is { } ext ? Formats[ext] : null;

    /// <summary>Whether the file is a zip archive datasets' imagefolder loader extracts and reads the images of.</summary>
    public static bool IsArchive(string path) => !IsImage(path) && Path.GetExtension(path).Equals(".zip", StringComparison.OrdinalIgnoreCase);
}
