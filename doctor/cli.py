import typer
app = typer.Typer()
@app.command()
def check():
    print("ok")
@app.command()
def snapshot():
    pass
def main():
    app()
