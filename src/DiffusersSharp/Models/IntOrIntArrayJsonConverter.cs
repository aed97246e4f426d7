using System.Text.Json;

namespace DiffusersSharp.Models;

/// <summary>
/// A config value that diffusers allows to be an int or a list of ints (e.g. <c>sample_size</c>: <c>32</c> or
/// <c>[32, 48]</c>), read into an <c>int[]</c> (see <see cref="ScalarOrArrayJsonConverter{T}"/>).
/// </summary>
internal sealed class IntOrIntArrayJsonConverter : ScalarOrArrayJsonConverter<int>
{
    protected override string Element => "an integer";
    protected override string Expected => "an integer or a list of integers";

    protected override bool TryRead(ref Utf8JsonReader reader, out int value)
    {
        bool number = reader.TokenType == JsonTokenType.Number;
        value = number ? reader.GetInt32() : 0;
        return number;
    }

    protected override void WriteValue(Utf8JsonWriter writer, int value) => writer.WriteNumberValue(value);
}
