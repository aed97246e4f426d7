using DiffusersSharp.Imaging;

namespace DiffusersSharp.Cli;

/// <summary>
/// The images a user hands <c>diffusers generate</c> (<c>--init-image</c>, <c>--mask</c>, <c>--control-image</c>), read as
/// diffusers' documented <c>load_image</c> reads them: turned upright by their EXIF orientation (<see cref="Image.LoadImage(string)"/>).
/// </summary>
internal static class InputImage
{
    /// <summary>Reads the image given by <paramref name="option"/>; a file that cannot be read is a usage error naming the option and the file.</summary>
    public static Image Load(string path, string option)
    {
        try
        {
            return Image.LoadImage(path);
        }
        catch (DiffusersException e)
        {
            throw new UserException($"{option}: {e.Message}");
        }
    }
}
